package api_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/server/api"
	"github.com/baton-ci/baton/server/store"
	"github.com/baton-ci/baton/shared/protocol"
	"github.com/baton-ci/baton/ui"
)

// uiClient is a browser-like client: a cookie jar, no redirects followed.
type uiClient struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newUIServer(t *testing.T) (*testServer, *store.DB) {
	t.Helper()
	var db *store.DB
	ts := newTestServerWith(t, func(s *api.Server) {
		db = s.Runs.(*store.DB)
		s.UI, s.Users, s.RunList = ui.Handler(), db, db
	})
	return ts, db
}

func newUIClient(t *testing.T, ts *testServer) *uiClient {
	jar, _ := cookiejar.New(nil)
	return &uiClient{t: t, base: ts.URL, c: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (c *uiClient) get(path string) (*http.Response, string) {
	c.t.Helper()
	resp, err := c.c.Get(c.base + path)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (c *uiClient) post(path string, form url.Values, header ...string) (*http.Response, string) {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.c.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, body string) string {
	t.Helper()
	m := csrfRe.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no csrf field in %.500s", body)
	}
	return m[1]
}

// login logs in through the form and returns the session's CSRF token.
func (c *uiClient) login(name, password string) string {
	c.t.Helper()
	_, body := c.get("/login")
	resp, body := c.post("/login", url.Values{"csrf": {csrfOf(c.t, body)}, "name": {name}, "password": {password}})
	if resp.StatusCode != http.StatusSeeOther {
		c.t.Fatalf("login as %s = %d: %.300s", name, resp.StatusCode, body)
	}
	_, body = c.get("/fleet")
	return csrfOf(c.t, body)
}

func addUser(t *testing.T, db *store.DB, name string, role server.Role, password string) {
	t.Helper()
	hash, err := api.HashPassword(password)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateUser(context.Background(), &server.User{Name: name, Role: role, PasswordHash: hash}); err != nil {
		t.Fatal(err)
	}
}

func TestUISetupLoginAndCookies(t *testing.T) {
	t.Parallel()
	ts, _ := newUIServer(t)
	c := newUIClient(t, ts)
	resp, _ := c.get("/runs?project=x")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login?next=%2Fruns%3Fproject%3Dx" {
		t.Fatalf("unauthenticated GET = %d %s, want a redirect to the login page", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ = c.get("/no/such/page"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Fatalf("unauthenticated GET of an unknown page = %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ = c.get("/login"); resp.Header.Get("Location") != "/setup" {
		t.Fatalf("login without users = %d %s, want /setup", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := c.get("/setup")
	if resp.Header.Get("Content-Security-Policy") != ui.CSP || !strings.Contains(ui.CSP, "default-src 'self'") {
		t.Errorf("CSP = %q", resp.Header.Get("Content-Security-Policy"))
	}
	if strings.Contains(body, "<script>") || strings.Contains(body, " style=") {
		t.Errorf("the page has inline script or style: %.400s", body)
	}
	form := url.Values{"csrf": {csrfOf(t, body)}, "token": {"wrong"}, "name": {"root"}, "password": {"long enough pw"}, "password2": {"long enough pw"}}
	if resp, _ = c.post("/setup", form); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("setup with a wrong admin token = %d", resp.StatusCode)
	}
	form.Set("token", adminToken)
	form.Set("password", "short")
	form.Set("password2", "short")
	if resp, body = c.post("/setup", form); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "at least 10") {
		t.Fatalf("setup with a short password = %d %.300s", resp.StatusCode, body)
	}
	form.Set("password", "long enough pw")
	form.Set("password2", "long enough pw")
	form.Del("csrf")
	if resp, _ = c.post("/setup", form); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("setup without its CSRF token = %d, want 403", resp.StatusCode)
	}
	_, body = c.get("/setup")
	form.Set("csrf", csrfOf(t, body))
	resp, _ = c.post("/setup", form)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/fleet" {
		t.Fatalf("setup = %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	var session *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "baton_session" {
			session = ck
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteLaxMode || session.Secure {
		t.Fatalf("session cookie = %+v, want HttpOnly, SameSite=Lax, not Secure over plain HTTP", session)
	}
	if resp, _ = c.get("/fleet"); resp.StatusCode != http.StatusOK {
		t.Fatalf("fleet after setup = %d", resp.StatusCode)
	}
	// Setup is closed once a user exists.
	if resp, _ = c.get("/setup"); resp.Header.Get("Location") != "/login" {
		t.Errorf("setup after the first admin = %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Logout ends the session on the server.
	_, body = c.get("/fleet")
	if resp, _ = c.post("/logout", url.Values{"csrf": {csrfOf(t, body)}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout = %d", resp.StatusCode)
	}
	c.c.Jar.SetCookies(resp.Request.URL, []*http.Cookie{session}) // a stolen copy of the cookie
	if resp, _ = c.get("/fleet"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("the logged-out session still works: %d", resp.StatusCode)
	}
}

func TestUICSRFRolesAndRateLimit(t *testing.T) {
	t.Parallel()
	ts, db := newUIServer(t)
	addUser(t, db, "ann", server.RoleAdmin, "admin password")
	addUser(t, db, "vic", server.RoleViewer, "viewer password")
	admin := newUIClient(t, ts)
	csrf := admin.login("ann", "admin password")

	if resp, _ := admin.post("/ui/tokens", url.Values{"description": {"x"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST without CSRF token = %d, want 403", resp.StatusCode)
	}
	if resp, _ := admin.post("/ui/tokens", url.Values{"csrf": {"nope"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST with a wrong CSRF token = %d, want 403", resp.StatusCode)
	}
	resp, body := admin.post("/ui/tokens", url.Values{"csrf": {csrf}, "description": {"laptop"}})
	if resp.StatusCode != http.StatusCreated || !strings.Contains(body, `value="brt_`) {
		t.Fatalf("create token = %d %.300s", resp.StatusCode, body)
	}
	if resp, _ := admin.post("/ui/tokens", url.Values{"description": {"y"}}, "X-CSRF-Token", csrf); resp.StatusCode != http.StatusCreated {
		t.Errorf("POST with the CSRF header = %d", resp.StatusCode)
	}
	// The token is not shown again.
	if _, body := admin.get("/fleet"); strings.Contains(body, `value="brt_`) {
		t.Error("the registration token is shown again")
	}
	var audit []server.AuditEvent
	audit, _ = db.AuditLog(context.Background(), 10)
	if len(audit) == 0 || audit[0].Actor != "ui:ann" {
		t.Errorf("audit = %+v, want the UI user as actor", audit)
	}

	viewer := newUIClient(t, ts)
	vcsrf := viewer.login("vic", "viewer password")
	if resp, _ := viewer.get("/runs"); resp.StatusCode != http.StatusOK {
		t.Errorf("viewer GET /runs = %d", resp.StatusCode)
	}
	if resp, body := viewer.post("/ui/tokens", url.Values{"csrf": {vcsrf}}); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "viewer") {
		t.Errorf("viewer POST = %d %.200s, want 403", resp.StatusCode, body)
	}

	// An open redirect after login is refused.
	other := newUIClient(t, ts)
	_, body = other.get("/login")
	resp, _ = other.post("/login", url.Values{"csrf": {csrfOf(t, body)}, "name": {"vic"}, "password": {"viewer password"}, "next": {"//evil.example/"}})
	if resp.Header.Get("Location") != "/fleet" {
		t.Errorf("login with next=//evil.example/ redirects to %q", resp.Header.Get("Location"))
	}
	// Login: a wrong password, then the limit.
	evil := newUIClient(t, ts)
	_, body = evil.get("/login?next=//evil.example/")
	loginCSRF := csrfOf(t, body)
	for i := range 5 {
		resp, body := evil.post("/login", url.Values{"csrf": {loginCSRF}, "name": {"ann"}, "password": {"guess"}})
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "Wrong name or password") {
			t.Fatalf("wrong password %d = %d", i, resp.StatusCode)
		}
	}
	resp, body = evil.post("/login", url.Values{"csrf": {loginCSRF}, "name": {"ann"}, "password": {"admin password"}})
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, "Too many failed logins") {
		t.Fatalf("login after 5 failures = %d %.300s, want 429 with a clear message", resp.StatusCode, body)
	}
	// Script endpoints answer 401 without a session.
	if resp, _ := newUIClient(t, ts).get("/ui/events/fleet"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("SSE without a session = %d, want 401", resp.StatusCode)
	}
}

func TestUIPagesRender(t *testing.T) {
	t.Parallel()
	ts, db := newUIServer(t)
	addUser(t, db, "ann", server.RoleAdmin, "admin password")
	run := &server.Run{Project: "web", Name: "diamond", Runbook: "steps: [a, b]\n", Steps: []*server.Step{
		{Name: "a", Command: "echo a"}, {Name: "b", Command: "echo b", DependsOn: []string{"a"}}}}
	if err := db.CreateRun(context.Background(), run); err != nil {
		t.Fatal(err)
	}
	c := newUIClient(t, ts)
	c.login("ann", "admin password")
	for path, want := range map[string]string{
		"/fleet": "Registration tokens", "/runs": run.ID, "/runs?project=web&state=pending": run.ID,
		"/runs/" + run.ID: `data-step="b"`, "/projects": "/projects/web", "/projects/web": "Webhook URL",
	} {
		resp, body := c.get(path)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("GET %s = %d, want %q in %.300s", path, resp.StatusCode, want, body)
		}
		if strings.Contains(body, " style=") || strings.Contains(body, "<script>") {
			t.Errorf("GET %s has inline style or script", path)
		}
	}
	if resp, _ := c.get("/no/such/page"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown page with a session = %d", resp.StatusCode)
	}
	if resp, _ := c.get("/runs/nope"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown run = %d", resp.StatusCode)
	}
}

func TestListRunsAPI(t *testing.T) {
	t.Parallel()
	ts, db := newUIServer(t)
	var ids []string
	for i := range 5 {
		project := "a"
		if i%2 == 1 {
			project = "b"
		}
		run := &server.Run{Project: project, Name: "one", Runbook: "steps: [x]\n", Steps: []*server.Step{{Name: "x", Command: "true"}}}
		if err := db.CreateRun(context.Background(), run); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, run.ID)
	}
	get := func(query string) (int, protocol.RunList) {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+"/api/v1/runs"+query, nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := ts.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out protocol.RunList
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	code, page := get("?limit=2")
	if code != 200 || len(page.Runs) != 2 || !page.More || page.Runs[0].ID != ids[4] || page.Runs[1].ID != ids[3] {
		t.Fatalf("first page = %d %+v", code, page)
	}
	if code, page = get("?limit=2&offset=4"); code != 200 || len(page.Runs) != 1 || page.More || page.Runs[0].ID != ids[0] {
		t.Fatalf("last page = %d %+v", code, page)
	}
	if code, page = get("?project=b&state=pending"); code != 200 || len(page.Runs) != 2 || page.Runs[0].Project != "b" ||
		page.Runs[0].Trigger != "api" || page.Runs[0].State != "pending" {
		t.Fatalf("project b = %d %+v", code, page)
	}
	if code, page = get("?state=succeeded"); code != 200 || len(page.Runs) != 0 || page.Runs == nil {
		t.Fatalf("no succeeded runs = %d %+v (want an empty list)", code, page)
	}
	for _, bad := range []string{"?limit=0", "?limit=201", "?offset=-1", "?state=bogus", "?limit=x"} {
		if code, _ := get(bad); code != http.StatusBadRequest {
			t.Errorf("GET /api/v1/runs%s = %d, want 400", bad, code)
		}
	}
}

func TestUIStartAndCancelRun(t *testing.T) {
	t.Parallel()
	ts, db := newUIServer(t)
	addUser(t, db, "ann", server.RoleAdmin, "admin password")
	c := newUIClient(t, ts)
	csrf := c.login("ann", "admin password")
	resp, body := c.post("/ui/runs", url.Values{"csrf": {csrf}, "project": {"web"}, "runbook": {"steps:\r\n  - name: a\r\n    command: echo a\r\n"}})
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/runs/") {
		t.Fatalf("start run = %d %s %.300s", resp.StatusCode, loc, body)
	}
	id := strings.TrimPrefix(loc, "/runs/")
	if resp, body = c.post("/ui/runs", url.Values{"csrf": {csrf}, "project": {"web"}, "runbook": {"steps: nope"}}); resp.StatusCode != http.StatusBadRequest ||
		!strings.Contains(body, "invalid runbook") {
		t.Errorf("bad runbook = %d %.300s", resp.StatusCode, body)
	}
	resp, body = c.post("/ui/runs/"+id+"/cancel", url.Values{"csrf": {csrf}}, "Accept", "application/json")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"redirect":"/runs/`+id+`"`) {
		t.Fatalf("cancel = %d %s", resp.StatusCode, body)
	}
	run, err := db.FindRun(context.Background(), id)
	if err != nil || run.State != "cancelled" {
		t.Fatalf("run after cancel: %v %v", run.State, err)
	}
	events, _ := db.RunAudit(context.Background(), id)
	if len(events) == 0 || events[0].Actor != "ui:ann" || events[0].Action != "cancel" {
		t.Errorf("run audit = %+v, want cancel by ui:ann", events)
	}
	// Cancelling again is the API's conflict, shown as such.
	if resp, body = c.post("/ui/runs/"+id+"/cancel", url.Values{"csrf": {csrf}}, "Accept", "application/json"); resp.StatusCode != http.StatusConflict ||
		!strings.Contains(body, `"error"`) {
		t.Errorf("second cancel = %d %s", resp.StatusCode, body)
	}
}

func TestUIEventsAndLogTail(t *testing.T) {
	t.Parallel()
	ts, db := newUIServer(t)
	ctx := context.Background()
	addUser(t, db, "ann", server.RoleViewer, "viewer password")
	tok := sha256.Sum256([]byte("ui-token"))
	if err := db.CreateRegistrationToken(ctx, &server.RegistrationToken{Hash: tok[:]}); err != nil {
		t.Fatal(err)
	}
	agent := &server.Agent{ID: uuid.NewString(), Name: "tail", SigningKey: make([]byte, 32), HPKEKey: make([]byte, 32)}
	if err := db.RegisterAgent(ctx, agent, tok[:]); err != nil {
		t.Fatal(err)
	}
	run := &server.Run{Project: "web", Runbook: "steps: [a]\n", Steps: []*server.Step{{Name: "a", Command: "echo a"}}}
	if err := db.CreateRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	st, _, err := db.ReserveStep(ctx, agent.ID, time.Minute)
	if err != nil || st == nil {
		t.Fatalf("reserve: %v %v", st, err)
	}
	lease := server.Lease{StepID: st.ID, AgentID: agent.ID, Attempt: st.Attempt, ID: st.LeaseID}
	head := "\x1b[31mred\x1b[0m <b>bold?</b>\n"
	if err := db.AppendLog(ctx, lease, 0, []byte(head), "", nil); err != nil {
		t.Fatal(err)
	}
	c := newUIClient(t, ts)
	c.login("ann", "viewer password")

	// The fleet stream: the agent running one step, as the badge says.
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/ui/events/fleet", nil)
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := c.c.Do(req.WithContext(sctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("fleet events = %d %s", resp.StatusCode, ct)
	}
	sc := bufio.NewScanner(resp.Body)
	var update string
	for sc.Scan() {
		if sc.Text() == "event: update" && sc.Scan() {
			update = sc.Text()
			break
		}
	}
	if !strings.Contains(update, `"id":"`+agent.ID+`"`) || !strings.Contains(update, `"status":"ready"`) || !strings.Contains(update, `"running":1`) {
		t.Fatalf("fleet update = %q", update)
	}

	// The log tail: segments with classes, text never HTML, then only what
	// was added.
	var ans struct {
		Offset    int         `json:"offset"`
		Segments  [][2]string `json:"segments"`
		Truncated bool        `json:"truncated"`
	}
	_, body := c.get("/ui/runs/" + run.ID + "/steps/a/log")
	if err := json.Unmarshal([]byte(body), &ans); err != nil || ans.Offset != len(head) || len(ans.Segments) != 2 ||
		ans.Segments[0] != [2]string{"a-f31", "red"} || ans.Segments[1][1] != " <b>bold?</b>\n" || ans.Truncated {
		t.Fatalf("log tail = %s (%v)", body, err)
	}
	more := "second line\n"
	if err := db.AppendLog(ctx, lease, int64(len(head)), []byte(more), "", nil); err != nil {
		t.Fatal(err)
	}
	_, body = c.get(fmt.Sprintf("/ui/runs/%s/steps/a/log?offset=%d", run.ID, ans.Offset))
	if err := json.Unmarshal([]byte(body), &ans); err != nil || len(ans.Segments) != 1 || ans.Segments[0][1] != more {
		t.Fatalf("log after offset = %s", body)
	}
	resp2, body := c.get("/ui/runs/" + run.ID + "/steps/a/download")
	if resp2.StatusCode != 200 || body != head+more || !strings.Contains(resp2.Header.Get("Content-Disposition"), `filename="a.log"`) {
		t.Errorf("download = %d %q %s", resp2.StatusCode, body, resp2.Header.Get("Content-Disposition"))
	}
	if r, _ := c.get("/ui/runs/" + run.ID + "/steps/a/log?offset=-1"); r.StatusCode != http.StatusBadRequest {
		t.Errorf("negative offset = %d", r.StatusCode)
	}
}
