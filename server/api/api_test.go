package api_test

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/baton-ci/baton/server/api"
	"github.com/baton-ci/baton/server/artifacts"
	"github.com/baton-ci/baton/server/control"
	"github.com/baton-ci/baton/server/gitcache"
	"github.com/baton-ci/baton/server/secretbox"
	"github.com/baton-ci/baton/server/store"
	"github.com/baton-ci/baton/shared/envelope"
	"github.com/baton-ci/baton/shared/protocol"
)

const adminToken = "test-admin-token"

// The claims the server puts in agent access tokens; tests forge variants.
const (
	tokenIssuer   = "baton-server"
	tokenAudience = "baton-agent-api"
)

// testServer is a real API server over loopback HTTP with a real SQLite store.
type testServer struct {
	URL    string
	client *http.Client
	// key signs agent access tokens.
	key ed25519.PrivateKey
	// leases remembers the lease of every step reserved, by step id, so
	// the test agents' step calls carry it.
	leases sync.Map
	// srv is the server under test; artifacts is where it keeps artifact content.
	srv       *api.Server
	artifacts string
}

// lease is the lease id issued for stepID, or one never issued.
func (ts *testServer) lease(stepID string) string {
	v, ok := ts.leases.Load(stepID)
	if !ok {
		return "never-issued"
	}
	return v.(string)
}

func newTestServer(t *testing.T) *testServer {
	t.Helper()
	return newTestServerWith(t, nil)
}

// newTestServerWith lets configure change the server before it serves.
func newTestServerWith(t *testing.T, configure func(*api.Server)) *testServer {
	t.Helper()
	db, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "baton.db"))
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srv := &api.Server{
		Runs:        db,
		Dispatch:    db,
		Agents:      db,
		Secrets:     db,
		Projects:    db,
		Control:     control.New(time.Second, slog.New(slog.DiscardHandler)),
		Box:         testBox(t),
		AdminToken:  adminToken,
		SigningKey:  key,
		AgentConfig: protocol.AgentConfig{PoolSize: 3, EvictionTime: time.Minute},
		Wake:        api.NewWake(),
		Logger:      slog.New(slog.DiscardHandler),
		// Every call is written down: tests watch last_seen move.
		SeenResolution: time.Nanosecond,
	}
	artifactDir := filepath.Join(t.TempDir(), "artifacts")
	files, err := artifacts.Open(artifactDir)
	if err != nil {
		t.Fatal(err)
	}
	srv.Artifacts, srv.ArtifactFiles = db, files
	srv.Hooks, srv.Schedules, srv.Audit, srv.Queue, srv.Notifications = db, db, db, db, db
	if srv.Repos, err = gitcache.New(filepath.Join(t.TempDir(), "git")); err != nil {
		t.Fatal(err)
	}
	if configure != nil {
		configure(srv)
	}
	hs := httptest.NewServer(srv.Router())
	hookCtx, stopHooks := context.WithCancel(context.Background())
	go srv.ProcessHooks(hookCtx)
	t.Cleanup(stopHooks)
	t.Cleanup(hs.Close) // runs before db.Close
	return &testServer{URL: hs.URL, client: hs.Client(), key: key, srv: srv, artifacts: artifactDir}
}

// response is a finished HTTP exchange.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// decode unmarshals the body into v, failing the test on error.
func (r *response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %q: %v", r.Body, err)
	}
}

// errorMessage returns the "error" field of a JSON error body, failing the
// test when the body is not one.
func (r *response) errorMessage(t *testing.T) string {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error response Content-Type = %q, want application/json", ct)
	}
	var e protocol.Error
	r.decode(t, &e)
	if e.Error == "" {
		t.Errorf("error body %q has no error message", r.Body)
	}
	return e.Error
}

// request describes one call.
type request struct {
	Method      string
	Path        string
	Auth        string // the whole Authorization header, if any
	ContentType string
	Body        []byte
	Header      map[string]string // more headers
}

func (ts *testServer) do(t *testing.T, req request) *response {
	t.Helper()
	hr, err := http.NewRequestWithContext(t.Context(), req.Method, ts.URL+req.Path, bytes.NewReader(req.Body))
	if err != nil {
		t.Fatal(err)
	}
	if req.Auth != "" {
		hr.Header.Set("Authorization", req.Auth)
	}
	if req.ContentType != "" {
		hr.Header.Set("Content-Type", req.ContentType)
	}
	for k, v := range req.Header {
		hr.Header.Set(k, v)
	}
	res, err := ts.client.Do(hr)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.Path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", req.Method, req.Path, err)
	}
	return &response{Status: res.StatusCode, Header: res.Header, Body: body}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// admin calls the admin API with the admin token and a JSON body (nil for none).
func (ts *testServer) admin(t *testing.T, method, path string, body any) *response {
	t.Helper()
	req := request{Method: method, Path: path, Auth: "Bearer " + adminToken}
	if body != nil {
		req.Body, req.ContentType = mustJSON(t, body), "application/json"
	}
	return ts.do(t, req)
}

func wantStatus(t *testing.T, what string, res *response, status int) {
	t.Helper()
	if res.Status != status {
		t.Fatalf("%s: status %d, want %d; body %s", what, res.Status, status, res.Body)
	}
}

const diamondRunbook = `name: diamond
global:
  image: busybox
  env:
    GREETING: hello
steps:
  - name: a
    command: echo a
    env:
      STEP: a
  - name: b
    command: echo b
    depends_on: [a]
  - name: c
    command: echo c
    depends_on: a
  - name: d
    command: echo d
    depends_on: [b, c]
`

func (ts *testServer) createRun(t *testing.T, project, runbook string) protocol.Run {
	t.Helper()
	res := ts.admin(t, http.MethodPost, "/api/v1/runs", protocol.CreateRunRequest{Project: project, Runbook: runbook})
	wantStatus(t, "create run", res, http.StatusCreated)
	var run protocol.Run
	res.decode(t, &run)
	return run
}

func (ts *testServer) getRun(t *testing.T, id string) protocol.Run {
	t.Helper()
	res := ts.admin(t, http.MethodGet, "/api/v1/runs/"+id, nil)
	wantStatus(t, "get run", res, http.StatusOK)
	var run protocol.Run
	res.decode(t, &run)
	return run
}

func stepStates(run protocol.Run) string {
	parts := make([]string, len(run.Steps))
	for i, st := range run.Steps {
		parts[i] = st.Name + "=" + string(st.State)
	}
	return strings.Join(parts, " ")
}

// testAgent is an agent with real keys, registered over the API.
type testAgent struct {
	ID      string
	Name    string
	Signing ed25519.PrivateKey
	HPKE    *ecdh.PrivateKey
	// Token is a current access token.
	Token string
}

func newAgentKeys(t *testing.T) (ed25519.PrivateKey, *ecdh.PrivateKey) {
	t.Helper()
	_, signing, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hpke, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return signing, hpke
}

// registrationToken creates a registration token through the admin API.
func (ts *testServer) registrationToken(t *testing.T) string {
	t.Helper()
	res := ts.admin(t, http.MethodPost, "/api/v1/registration-tokens", nil)
	wantStatus(t, "create registration token", res, http.StatusCreated)
	var tok protocol.RegistrationToken
	res.decode(t, &tok)
	if tok.Token == "" || tok.ID == "" {
		t.Fatalf("registration token response %s lacks id or token", res.Body)
	}
	return tok.Token
}

func (ts *testServer) register(t *testing.T, req protocol.RegisterRequest) *response {
	t.Helper()
	return ts.do(t, request{Method: http.MethodPost, Path: protocol.PathRegister, ContentType: "application/json", Body: mustJSON(t, req)})
}

func registerRequest(token, id, name string, signing ed25519.PrivateKey, hpke *ecdh.PrivateKey) protocol.RegisterRequest {
	return protocol.RegisterRequest{
		Token: token, AgentID: id, Name: name, Version: "test",
		SigningKey: signing.Public().(ed25519.PublicKey), HPKEKey: hpke.PublicKey().Bytes(),
	}
}

// newAgent registers a new agent and obtains an access token for it.
func (ts *testServer) newAgent(t *testing.T, name string) *testAgent {
	t.Helper()
	signing, hpke := newAgentKeys(t)
	a := &testAgent{ID: uuid.NewString(), Name: name, Signing: signing, HPKE: hpke}
	res := ts.register(t, registerRequest(ts.registrationToken(t), a.ID, name, signing, hpke))
	wantStatus(t, "register", res, http.StatusOK)
	var reg protocol.RegisterResponse
	res.decode(t, &reg)
	if reg.AgentID != a.ID || reg.Config.PoolSize != 3 || reg.Config.EvictionTime != time.Minute {
		t.Fatalf("register response = %+v, want agent %s and the server's config", reg, a.ID)
	}
	res = ts.requestToken(t, a.ID, signing, time.Now())
	wantStatus(t, "agent token", res, http.StatusOK)
	var tok protocol.TokenResponse
	res.decode(t, &tok)
	if tok.Token == "" || time.Until(tok.ExpiresAt) < time.Minute || time.Until(tok.ExpiresAt) > api.AgentTokenTTL {
		t.Fatalf("token response = %+v, want a token expiring within %s", tok, api.AgentTokenTTL)
	}
	a.Token = tok.Token
	return a
}

// requestToken signs a token request at the given time with key.
func (ts *testServer) requestToken(t *testing.T, agentID string, key ed25519.PrivateKey, at time.Time) *response {
	t.Helper()
	ms := at.UnixMilli()
	req := protocol.TokenRequest{AgentID: agentID, Timestamp: ms, Signature: ed25519.Sign(key, protocol.TokenMessage(agentID, ms))}
	return ts.do(t, request{Method: http.MethodPost, Path: protocol.PathToken, ContentType: "application/json", Body: mustJSON(t, req)})
}

func (a *testAgent) call(t *testing.T, ts *testServer, method, path, contentType string, body []byte) *response {
	t.Helper()
	return ts.do(t, request{Method: method, Path: path, Auth: "Bearer " + a.Token, ContentType: contentType, Body: body})
}

// reserve long-polls for work; wait is sent as ?wait=.
func (a *testAgent) reserve(t *testing.T, ts *testServer, wait string) *response {
	t.Helper()
	return a.call(t, ts, http.MethodPost, protocol.PathReserve+"?wait="+wait, "", nil)
}

func (a *testAgent) reserveStep(t *testing.T, ts *testServer, want string) protocol.Assignment {
	t.Helper()
	res := a.reserve(t, ts, "0s")
	wantStatus(t, "reserve "+want, res, http.StatusOK)
	as := a.open(t, ts, res)
	if as.StepName != want {
		t.Fatalf("reserved step %q, want %q", as.StepName, want)
	}
	return as
}

func (a *testAgent) appendLog(t *testing.T, ts *testServer, stepID string, attempt int, offset int64, data string) *response {
	t.Helper()
	path := fmt.Sprintf(protocol.PathStepLog, stepID) + fmt.Sprintf("?attempt=%d&offset=%d&lease=%s", attempt, offset, ts.lease(stepID))
	return a.call(t, ts, http.MethodPost, path, "application/octet-stream", []byte(data))
}

func (a *testAgent) complete(t *testing.T, ts *testServer, stepID string, res protocol.StepResult) *response {
	t.Helper()
	if res.LeaseID == "" {
		res.LeaseID = ts.lease(stepID)
	}
	return a.call(t, ts, http.MethodPost, fmt.Sprintf(protocol.PathStepComplete, stepID), "application/json", mustJSON(t, res))
}

func TestProbesNeedNoAuth(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	for _, path := range []string{"/livez", "/readyz"} {
		res := ts.do(t, request{Method: http.MethodGet, Path: path})
		if res.Status != http.StatusOK || string(res.Body) != "ok\n" {
			t.Errorf("GET %s = %d %q, want 200 ok", path, res.Status, res.Body)
		}
	}
}

func TestAdminRoutesRequireAdminToken(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	routes := []struct{ method, path string }{
		{http.MethodPost, "/api/v1/registration-tokens"},
		{http.MethodPost, "/api/v1/runs"},
		{http.MethodGet, "/api/v1/runs/some-run"},
		{http.MethodGet, "/api/v1/runs/some-run/steps/a/log"},
		{http.MethodGet, "/api/v1/agents"},
		{http.MethodGet, "/api/v1/agents/some-agent"},
	}
	auths := []struct{ name, header string }{
		{"no token", ""},
		{"wrong token", "Bearer not-the-admin-token"},
		{"token prefix", "Bearer " + adminToken[:len(adminToken)-1]},
		{"token without scheme", adminToken},
		{"basic scheme", "Basic " + adminToken},
		{"empty bearer", "Bearer "},
	}
	for _, rt := range routes {
		for _, auth := range auths {
			t.Run(rt.method+" "+rt.path+"/"+auth.name, func(t *testing.T) {
				t.Parallel()
				body := []byte(`{"project":"p","runbook":"steps: [{name: a, command: x}]"}`)
				res := ts.do(t, request{Method: rt.method, Path: rt.path, Auth: auth.header, ContentType: "application/json", Body: body})
				if res.Status != http.StatusUnauthorized {
					t.Fatalf("status %d, want 401; body %s", res.Status, res.Body)
				}
				if msg := res.errorMessage(t); !strings.Contains(msg, "admin token") {
					t.Errorf("error %q does not say an admin token is needed", msg)
				}
			})
		}
	}
	// Control: the right token, with the scheme in any case, gets through.
	res := ts.do(t, request{Method: http.MethodGet, Path: "/api/v1/agents", Auth: "bearer " + adminToken})
	wantStatus(t, "list agents with the admin token", res, http.StatusOK)
	if strings.TrimSpace(string(res.Body)) != "[]" {
		t.Errorf("agents = %s, want []", res.Body)
	}
}

func TestCreateRun(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)

	t.Run("json", func(t *testing.T) {
		t.Parallel()
		run := ts.createRun(t, "web", diamondRunbook)
		if run.ID == "" || run.Project != "web" || run.Name != "diamond" || run.State != "pending" {
			t.Errorf("created run = %+v", run)
		}
		if got := stepStates(run); got != "a=ready b=pending c=pending d=pending" {
			t.Errorf("created steps: %s", got)
		}
		if got := ts.getRun(t, run.ID); got.ID != run.ID || stepStates(got) != stepStates(run) {
			t.Errorf("GET after POST = %+v", got)
		}
	})

	t.Run("yaml", func(t *testing.T) {
		t.Parallel()
		for _, ct := range []string{"application/yaml", "application/x-yaml; charset=utf-8", "text/yaml"} {
			res := ts.do(t, request{Method: http.MethodPost, Path: "/api/v1/runs?project=docs", Auth: "Bearer " + adminToken,
				ContentType: ct, Body: []byte(diamondRunbook)})
			wantStatus(t, "create run as "+ct, res, http.StatusCreated)
			var run protocol.Run
			res.decode(t, &run)
			if run.Project != "docs" || len(run.Steps) != 4 || run.Steps[3].Name != "d" || fmt.Sprint(run.Steps[3].DependsOn) != "[b c]" {
				t.Errorf("%s: created run = %+v", ct, run)
			}
			if run.Steps[0].Image != "busybox" || run.Steps[2].Image != "busybox" {
				t.Errorf("%s: global.image not applied: %+v", ct, run.Steps)
			}
		}
	})

	t.Run("yaml without project", func(t *testing.T) {
		t.Parallel()
		res := ts.do(t, request{Method: http.MethodPost, Path: "/api/v1/runs", Auth: "Bearer " + adminToken,
			ContentType: "application/yaml", Body: []byte(diamondRunbook)})
		wantStatus(t, "create run without project", res, http.StatusBadRequest)
		if msg := res.errorMessage(t); !strings.Contains(msg, "project") {
			t.Errorf("error %q does not mention the project", msg)
		}
	})
}

func TestCreateRunRejectsInvalidRunbooks(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	tests := []struct {
		name        string
		contentType string
		body        string
		want        []string // substrings of the error message
	}{
		{
			name:        "cycle",
			contentType: "application/yaml",
			body: `steps:
  - name: setup
    command: "true"
  - name: a
    command: echo a
    depends_on: [setup, b]
  - name: b
    command: echo b
    depends_on: [a]
`,
			want: []string{"runbook.yml:4:", "dependency cycle", "a -> b -> a"},
		},
		{
			name:        "long cycle",
			contentType: "application/yaml",
			body: `steps:
  - name: x
    command: "true"
    depends_on: [z]
  - name: y
    command: "true"
    depends_on: [x]
  - name: z
    command: "true"
    depends_on: [y]
`,
			want: []string{"runbook.yml:2:", "x -> z -> y -> x"},
		},
		{
			name:        "missing dependency",
			contentType: "application/yaml",
			body: `steps:
  - name: a
    command: echo a
  - name: b
    command: echo b
    depends_on: [a, nope]
`,
			want: []string{"runbook.yml:4:", `step "b"`, `"nope"`, "unknown"},
		},
		{
			name:        "duplicate step names",
			contentType: "application/yaml",
			body: `steps:
  - name: a
    command: echo a
  - name: a
    command: echo again
`,
			want: []string{"runbook.yml:4:", `duplicate step name "a"`, "line 2"},
		},
		{
			name:        "cycle in json body",
			contentType: "application/json",
			body:        `{"project":"p","runbook":"steps:\n  - name: a\n    command: x\n    depends_on: [b]\n  - name: b\n    command: x\n    depends_on: [a]\n"}`,
			want:        []string{"runbook.yml:2:", "a -> b -> a"},
		},
		{
			name:        "invalid yaml",
			contentType: "application/yaml",
			body:        "steps: [\n",
			want:        []string{"invalid YAML"},
		},
		{
			name:        "bad project name",
			contentType: "application/json",
			body:        `{"project":"../etc","runbook":"steps: [{name: a, command: x}]"}`,
			want:        []string{"project"},
		},
		{
			name:        "unknown json field",
			contentType: "application/json",
			body:        `{"project":"p","runbook":"steps: [{name: a, command: x}]","extra":1}`,
			want:        []string{"invalid JSON", "extra"},
		},
		{
			name:        "unsupported content type",
			contentType: "application/xml",
			body:        `<runbook/>`,
			want:        []string{"Content-Type"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := ts.do(t, request{Method: http.MethodPost, Path: "/api/v1/runs?project=p", Auth: "Bearer " + adminToken,
				ContentType: tc.contentType, Body: []byte(tc.body)})
			if res.Status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400; body %s", res.Status, res.Body)
			}
			msg := res.errorMessage(t)
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
		})
	}
}

func TestCreateRunErrorDetailsListEveryProblem(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	body := `steps:
  - name: a
    command: echo a
    depends_on: [ghost]
  - name: a
    command: echo b
`
	res := ts.do(t, request{Method: http.MethodPost, Path: "/api/v1/runs?project=p", Auth: "Bearer " + adminToken,
		ContentType: "application/yaml", Body: []byte(body)})
	wantStatus(t, "create run", res, http.StatusBadRequest)
	var e protocol.Error
	res.decode(t, &e)
	want := []string{
		`runbook.yml:2:5: step "a" depends on unknown step "ghost"`,
		`runbook.yml:5:5: duplicate step name "a" (first defined at line 2)`,
	}
	if fmt.Sprint(e.Details) != fmt.Sprint(want) {
		t.Errorf("details = %q, want %q", e.Details, want)
	}
}

func TestGetRunShape(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	created := ts.createRun(t, "shape", diamondRunbook)
	agent := ts.newAgent(t, "shape-agent")
	as := agent.reserveStep(t, ts, "a")
	if as.RunID != created.ID || as.Attempt != 1 {
		t.Fatalf("assignment = %+v, want run %s attempt 1", as, created.ID)
	}

	res := ts.admin(t, http.MethodGet, "/api/v1/runs/"+created.ID, nil)
	wantStatus(t, "get run", res, http.StatusOK)
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	var raw map[string]any
	res.decode(t, &raw)
	for _, k := range []string{"id", "project", "name", "state", "created_at", "started_at", "finished_at", "steps"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("run JSON lacks %q: %s", k, res.Body)
		}
	}
	if raw["id"] != created.ID || raw["project"] != "shape" || raw["state"] != "running" {
		t.Errorf("run id/project/state = %v/%v/%v", raw["id"], raw["project"], raw["state"])
	}
	if _, ok := raw["started_at"].(string); !ok || raw["finished_at"] != nil {
		t.Errorf("started_at = %v, finished_at = %v; want a time and null", raw["started_at"], raw["finished_at"])
	}
	steps, ok := raw["steps"].([]any)
	if !ok || len(steps) != 4 {
		t.Fatalf("steps = %v, want an array of 4", raw["steps"])
	}
	wantState := []string{"running", "pending", "pending", "pending"}
	for i, s := range steps {
		step, ok := s.(map[string]any)
		if !ok {
			t.Fatalf("step %d is %T", i, s)
		}
		for _, k := range []string{"name", "state", "exit_code", "started_at", "finished_at", "depends_on", "attempt"} {
			if _, ok := step[k]; !ok {
				t.Errorf("step %d JSON lacks %q", i, k)
			}
		}
		if step["name"] != "abcd"[i:i+1] || step["state"] != wantState[i] || step["exit_code"] != nil || step["finished_at"] != nil {
			t.Errorf("step %d = %v, want name %s state %s, null exit_code and finished_at", i, step, "abcd"[i:i+1], wantState[i])
		}
		if _, ok := step["depends_on"].([]any); !ok {
			t.Errorf("step %d depends_on = %v, want an array (never null)", i, step["depends_on"])
		}
	}
	a := steps[0].(map[string]any)
	if a["agent_id"] != agent.ID || a["attempt"] != float64(1) {
		t.Errorf("reserved step agent_id = %v attempt = %v, want %s, 1", a["agent_id"], a["attempt"], agent.ID)
	}
	if _, ok := a["started_at"].(string); !ok {
		t.Errorf("reserved step started_at = %v, want a time", a["started_at"])
	}
	if b := steps[1].(map[string]any); b["started_at"] != nil || b["agent_id"] != nil {
		t.Errorf("pending step b has started_at %v agent_id %v", b["started_at"], b["agent_id"])
	}

	// Finish a and check exit_code and finished_at appear.
	wantStatus(t, "complete a", agent.complete(t, ts, as.StepID, protocol.StepResult{Attempt: 1, ExitCode: new(0)}), http.StatusNoContent)
	res = ts.admin(t, http.MethodGet, "/api/v1/runs/"+created.ID, nil)
	raw = nil
	res.decode(t, &raw)
	a = raw["steps"].([]any)[0].(map[string]any)
	if a["state"] != "succeeded" || a["exit_code"] != float64(0) {
		t.Errorf("completed step = %v, want succeeded with exit_code 0", a)
	}
	if _, ok := a["finished_at"].(string); !ok {
		t.Errorf("completed step finished_at = %v, want a time", a["finished_at"])
	}
}

func TestGetRunUnknownIs404(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	for _, path := range []string{"/api/v1/runs/" + uuid.NewString(), "/api/v1/runs/" + uuid.NewString() + "/steps/a/log", "/api/v1/agents/" + uuid.NewString()} {
		res := ts.admin(t, http.MethodGet, path, nil)
		wantStatus(t, "GET "+path, res, http.StatusNotFound)
		if msg := res.errorMessage(t); !strings.Contains(msg, "not found") {
			t.Errorf("GET %s: error %q", path, msg)
		}
	}
	run := ts.createRun(t, "p", diamondRunbook)
	res := ts.admin(t, http.MethodGet, "/api/v1/runs/"+run.ID+"/steps/zz/log", nil)
	wantStatus(t, "log of unknown step", res, http.StatusNotFound)
}

func TestDryRunReturnsPlanAndStartsNothing(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	agent := ts.newAgent(t, "a1")
	rb := "params:\n  who: {default: world}\nsteps:\n  - name: a\n    command: echo ${{ params.who }}\n  - name: b\n    command: echo b\n    depends_on: [a]\n"
	res := ts.do(t, request{Method: "POST", Path: "/api/v1/runs?project=p&dry_run=true&param.who=you",
		Auth: "Bearer " + adminToken, ContentType: "application/yaml", Body: []byte(rb)})
	wantStatus(t, "dry run", res, 200)
	var plan struct {
		Levels [][]struct {
			Name    string `json:"name"`
			Command string `json:"command"`
		} `json:"levels"`
	}
	res.decode(t, &plan)
	if len(plan.Levels) != 2 || plan.Levels[0][0].Command != "echo you" || plan.Levels[1][0].Name != "b" {
		t.Fatalf("plan %s", res.Body)
	}
	wantStatus(t, "reserve after a dry run", agent.reserve(t, ts, "10ms"), 204)
	res = ts.do(t, request{Method: "POST", Path: "/api/v1/runs?project=p&dry_run=true&param.nope=1",
		Auth: "Bearer " + adminToken, ContentType: "application/yaml", Body: []byte(rb)})
	wantStatus(t, "dry run with an unknown param", res, 400)
}

func TestApproveOverHTTP(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	agent := ts.newAgent(t, "a1")
	run := ts.createRun(t, "p", "steps:\n  - name: deploy\n    command: x\n    approval:\n      message: go?\n")
	if st := run.Steps[0]; st.State != "pending" || st.Reason != "awaiting_approval" || st.ApprovalMessage != "go?" {
		t.Fatalf("gated step %+v", st)
	}
	wantStatus(t, "reserve while awaiting approval", agent.reserve(t, ts, "10ms"), 204)
	wantStatus(t, "approve", ts.admin(t, "POST", "/api/v1/runs/"+run.ID+"/steps/deploy/approve", nil), 200)
	agent.reserveStep(t, ts, "deploy")
	wantStatus(t, "approve twice", ts.admin(t, "POST", "/api/v1/runs/"+run.ID+"/steps/deploy/approve", nil), 409)
	wantStatus(t, "approve an unknown step", ts.admin(t, "POST", "/api/v1/runs/"+run.ID+"/steps/nope/reject", nil), 404)
}

func testBox(t *testing.T) *secretbox.Box {
	t.Helper()
	box, err := secretbox.New(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return box
}

func TestSecretsAPI(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	agent := ts.newAgent(t, "a1")
	rb := "global:\n  secrets: [TOKEN]\nsteps:\n  - name: a\n    command: x\n    secrets: [KEY]\n"
	res := ts.admin(t, "POST", "/api/v1/runs", map[string]string{"project": "web", "runbook": rb})
	wantStatus(t, "run with unset secrets", res, 400)
	if msg := res.errorMessage(t); !strings.Contains(msg, `project "web" has no secret KEY, TOKEN`) {
		t.Errorf("error %q", msg)
	}
	wantStatus(t, "short secret", ts.admin(t, "PUT", "/api/v1/projects/web/secrets/TOKEN", map[string]string{"value": "abc"}), 400)
	wantStatus(t, "reserved name", ts.admin(t, "PUT", "/api/v1/projects/web/secrets/BATON_X", map[string]string{"value": "abcdefgh"}), 400)
	wantStatus(t, "set TOKEN", ts.admin(t, "PUT", "/api/v1/projects/web/secrets/TOKEN", map[string]string{"value": "token-value-1"}), 204)
	wantStatus(t, "set KEY", ts.admin(t, "PUT", "/api/v1/projects/web/secrets/KEY", map[string]string{"value": "key-value-2"}), 204)
	var names struct{ Names []string }
	ts.admin(t, "GET", "/api/v1/projects/web/secrets", nil).decode(t, &names)
	if strings.Join(names.Names, ",") != "KEY,TOKEN" {
		t.Errorf("names %v", names.Names)
	}
	run := ts.createRun(t, "web", rb)
	asg := agent.reserveStep(t, ts, "a")
	if asg.Secrets["TOKEN"] != "token-value-1" || asg.Secrets["KEY"] != "key-value-2" || len(asg.Secrets) != 2 {
		t.Errorf("assignment secrets %v", asg.Secrets)
	}
	got := ts.getRun(t, run.ID)
	if b, _ := json.Marshal(got); strings.Contains(string(b), "token-value-1") {
		t.Error("a secret value shows in the run view")
	}
	wantStatus(t, "delete", ts.admin(t, "DELETE", "/api/v1/projects/web/secrets/KEY", nil), 204)
	wantStatus(t, "delete again", ts.admin(t, "DELETE", "/api/v1/projects/web/secrets/KEY", nil), 404)
}

func TestRegistrationTokensAPI(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	res := ts.admin(t, "POST", "/api/v1/registration-tokens", map[string]any{"description": "ci", "expires_in": "1h", "max_uses": 2})
	wantStatus(t, "create", res, 201)
	var tok protocol.RegistrationToken
	res.decode(t, &tok)
	if tok.Token == "" || tok.MaxUses != 2 || tok.ExpiresAt == nil || tok.Description != "ci" {
		t.Fatalf("token %+v", tok)
	}
	wantStatus(t, "bad expiry", ts.admin(t, "POST", "/api/v1/registration-tokens", map[string]any{"expires_in": "soon"}), 400)
	var list []protocol.RegistrationToken
	ts.admin(t, "GET", "/api/v1/registration-tokens", nil).decode(t, &list)
	if len(list) != 1 || list[0].ID != tok.ID || list[0].Token != "" {
		t.Fatalf("list %+v: tokens are listed without their secret", list)
	}
	wantStatus(t, "revoke", ts.admin(t, "DELETE", "/api/v1/registration-tokens/"+tok.ID, nil), 204)
	wantStatus(t, "revoke unknown", ts.admin(t, "DELETE", "/api/v1/registration-tokens/nope", nil), 404)
	signing, hpke := newAgentKeys(t)
	res = ts.register(t, registerRequest(tok.Token, uuid.NewString(), "late", signing, hpke))
	wantStatus(t, "register with a revoked token", res, 401)
	if msg := res.errorMessage(t); !strings.Contains(msg, "revoked") {
		t.Errorf("error %q", msg)
	}
}

// open decodes a reservation and opens its sealed assignment as the agent
// would: with the agent's key, checking the server's signature and binding.
func (a *testAgent) open(t *testing.T, ts *testServer, res *response) protocol.Assignment {
	t.Helper()
	var rsv protocol.Reservation
	res.decode(t, &rsv)
	as := a.openReservation(t, ts, rsv)
	for _, v := range as.Secrets {
		if bytes.Contains(res.Body, []byte(v)) || bytes.Contains(res.Body, []byte(base64.StdEncoding.EncodeToString([]byte(v)))) {
			t.Errorf("a secret is readable in the reservation: %s", res.Body)
		}
	}
	return as
}

// openReservation opens a reservation's sealed assignment as the agent
// would, and remembers its lease.
func (a *testAgent) openReservation(t *testing.T, ts *testServer, rsv protocol.Reservation) protocol.Assignment {
	t.Helper()
	ts.leases.Store(rsv.StepID, rsv.LeaseID)
	plain, err := envelope.Open(a.HPKE, ts.key.Public().(ed25519.PublicKey),
		envelope.Binding{AgentID: a.ID, StepID: rsv.StepID, Attempt: rsv.Attempt}, rsv.Sealed)
	if err != nil {
		t.Fatalf("open reservation: %v", err)
	}
	var as protocol.Assignment
	if err := json.Unmarshal(plain, &as); err != nil {
		t.Fatal(err)
	}
	return as
}
