package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// chromiumPath is where Debian's chromium package puts the browser.
const chromiumPath = "/usr/bin/chromium"

// browser starts headless Chromium for the test, or skips loudly (fails
// when CI=true).
func browser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Chromium is required when CI=true (apt-get install chromium): %v", err)
		}
		t.Skipf("SKIPPING the browser test: no %s (apt-get install chromium)", chromiumPath)
	}
	// Not t.TempDir: Chromium's helpers may still write to the profile as
	// the browser stops, which would fail the test at cleanup.
	profile, err := os.MkdirTemp("", "baton-ui-chromium")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.NoSandbox, // the test runs as root in a container; never outside tests
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 1000),
		chromedp.UserDataDir(profile),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		os.RemoveAll(profile) // best effort, see above
	})
	// Answer every confirm() with OK, as the person clicking would.
	chromedp.ListenTarget(ctx, func(ev any) {
		if _, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			go chromedp.Run(ctx, page.HandleJavaScriptDialog(true))
		}
	})
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return ctx
}

// run runs browser actions with a deadline, failing the test on error.
func act(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// waitJS polls a JavaScript condition in the page until it is true.
func waitJS(t *testing.T, ctx context.Context, timeout time.Duration, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var ok bool
		err := chromedp.Run(ctx, chromedp.Evaluate(expr, &ok))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			var body string
			chromedp.Run(ctx, chromedp.Evaluate(`document.body ? document.body.innerText.slice(0, 3000) : ""`, &body))
			t.Fatalf("timed out after %s waiting for %s (last error %v); page text:\n%s", timeout, what, err, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func evalString(t *testing.T, ctx context.Context, expr string) string {
	t.Helper()
	var s string
	act(t, ctx, "evaluate "+expr, chromedp.Evaluate(expr, &s))
	return s
}

// screenshot writes a full-page PNG to <repo>/.screenshots/name.png.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := filepath.Join(repoRoot, ".screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var png []byte
	act(t, ctx, "screenshot "+name, chromedp.FullScreenshot(&png, 100))
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// TestUIInBrowser drives the admin UI in Chromium against a real server and
// two real agents: setup and login, the fleet with a live badge, a run
// whose DAG and log update live, an approval, hostile log content, and the
// refusals (no session, no CSRF token).
func TestUIInBrowser(t *testing.T) {
	t.Parallel()
	ctx := browser(t)
	s := startServer(t, freeAddr(t), t.TempDir())
	token := s.registrationToken(t)
	startAgent(t, s, token, t.TempDir(), "ui-one", "--labels", "zone=a")
	startAgent(t, s, token, t.TempDir(), "ui-two", "--labels", "zone=b")
	agents := waitAgents(t, s, 2)

	// No user yet: any page leads to the setup page, which wants the
	// admin token.
	act(t, ctx, "open fleet", chromedp.Navigate(s.url+"/fleet"))
	waitJS(t, ctx, 10*time.Second, "setup page", `location.pathname === "/setup"`)
	act(t, ctx, "setup with a wrong token",
		chromedp.SendKeys("#token", "not-the-token", chromedp.ByQuery),
		chromedp.SendKeys("#name", "root", chromedp.ByQuery),
		chromedp.SendKeys("#password", "correct horse battery", chromedp.ByQuery),
		chromedp.SendKeys("#password2", "correct horse battery", chromedp.ByQuery),
		chromedp.Click(`button[type="submit"]`, chromedp.ByQuery))
	waitJS(t, ctx, 10*time.Second, "wrong token refused", `document.querySelector(".error") !== null && location.pathname === "/setup"`)
	act(t, ctx, "setup",
		chromedp.SetValue("#token", s.admin, chromedp.ByQuery),
		chromedp.SetValue("#name", "root", chromedp.ByQuery),
		chromedp.SendKeys("#password", "correct horse battery", chromedp.ByQuery),
		chromedp.SendKeys("#password2", "correct horse battery", chromedp.ByQuery),
		chromedp.Click(`button[type="submit"]`, chromedp.ByQuery))
	waitJS(t, ctx, 10*time.Second, "logged in on the fleet page", `location.pathname === "/fleet"`)

	// The fleet: both agents, idle.
	waitJS(t, ctx, 10*time.Second, "two agents listed", `document.querySelectorAll("tr[data-agent]").length === 2`)
	for _, a := range agents {
		waitJS(t, ctx, 10*time.Second, "agent "+a.Name+" idle",
			fmt.Sprintf(`document.querySelector('#agent-%s [data-field="status"]').textContent === "idle"`, a.ID))
	}
	// Disable one: its badge changes without a reload (the marker survives).
	one := agents[0]
	act(t, ctx, "mark page", chromedp.Evaluate(`window.__noReload = 1`, nil))
	act(t, ctx, "disable", chromedp.Click(fmt.Sprintf(`#agent-%s button[formaction$="/disable"]`, one.ID), chromedp.ByQuery))
	waitJS(t, ctx, 15*time.Second, "badge disabled",
		fmt.Sprintf(`document.querySelector('#agent-%s [data-field="status"]').textContent === "disabled"`, one.ID))
	if evalString(t, ctx, `String(window.__noReload)`) != "1" {
		t.Fatal("the page reloaded; the badge should change in place")
	}
	waitFor(t, 10*time.Second, "agent disabled in the API", func() bool {
		for _, a := range s.agents(t) {
			if a.ID == one.ID {
				return a.State == "disabled"
			}
		}
		return false
	})
	// A change made elsewhere (the API) shows up live too.
	if code := s.do(t, "POST", "/api/v1/agents/"+one.ID+"/enable", "", nil, nil); code != 200 {
		t.Fatalf("enable: %d", code)
	}
	waitJS(t, ctx, 15*time.Second, "badge back to idle",
		fmt.Sprintf(`document.querySelector('#agent-%s [data-field="status"]').textContent === "idle"`, one.ID))
	screenshot(t, ctx, "fleet")
	// The same page on a phone-sized screen: nothing wider than the screen
	// but the scrolling table.
	act(t, ctx, "phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile), chromedp.Reload())
	waitJS(t, ctx, 10*time.Second, "fleet on a phone", `document.querySelectorAll("tr[data-agent]").length === 2 &&
		document.documentElement.scrollWidth <= window.innerWidth + 1`)
	screenshot(t, ctx, "fleet-phone")
	act(t, ctx, "desktop viewport", chromedp.EmulateViewport(1280, 1000))

	// A run: the page shows it while it runs; nodes turn green and the log
	// line appears without a reload.
	rb := "steps:\n" +
		"  - name: build\n    command: sleep 2; printf '\\033[32mhello-from-the-ui\\033[0m\\n'\n" +
		"  - name: test-unit\n    depends_on: build\n    command: echo unit ok\n" +
		"  - name: test-lint\n    depends_on: build\n    command: echo lint ok\n" +
		"  - name: package\n    depends_on: [test-unit, test-lint]\n    command: echo packaged\n"
	r := s.submit(t, "ui-demo", rb)
	act(t, ctx, "open run", chromedp.Navigate(s.url+"/runs/"+r.ID+"?step=build"))
	waitJS(t, ctx, 10*time.Second, "DAG drawn", `document.querySelectorAll("#dag a.node").length === 4`)
	act(t, ctx, "mark page", chromedp.Evaluate(`window.__noReload = 1`, nil))
	waitJS(t, ctx, 90*time.Second, "all nodes green",
		`Array.from(document.querySelectorAll("#dag a.node")).every(n => n.classList.contains("st-succeeded"))`)
	waitJS(t, ctx, 15*time.Second, "log line", `document.getElementById("log-view").textContent.includes("hello-from-the-ui")`)
	waitJS(t, ctx, 5*time.Second, "ANSI green as a class",
		`Array.from(document.querySelectorAll("#log-view span.a-f32")).some(s => s.textContent.includes("hello-from-the-ui"))`)
	if evalString(t, ctx, `String(window.__noReload)`) != "1" {
		t.Fatal("the run page reloaded; it should update in place")
	}
	waitJS(t, ctx, 10*time.Second, "run state", `document.getElementById("run-state").textContent === "succeeded"`)
	waitJS(t, ctx, 10*time.Second, "timing bars of all four steps", `document.querySelectorAll("#timing rect").length === 4`)
	screenshot(t, ctx, "run")

	// The runs list shows it.
	act(t, ctx, "runs page", chromedp.Navigate(s.url+"/runs?project=ui-demo"))
	waitJS(t, ctx, 10*time.Second, "run listed", fmt.Sprintf(`document.querySelector('a[href="/runs/%s"]') !== null`, r.ID))

	// Approve a waiting run, with a comment; the audit trail names the user.
	gate := s.submit(t, "ui-gate", "steps:\n  - name: build\n    command: echo built\n  - name: deploy\n    depends_on: build\n"+
		"    approval: {required: true, message: \"ship it?\"}\n    command: echo shipped\n")
	waitFor(t, 60*time.Second, "run waiting", func() bool { return s.getRun(t, gate.ID).State == "waiting" })
	act(t, ctx, "open gated run", chromedp.Navigate(s.url+"/runs/"+gate.ID))
	waitJS(t, ctx, 10*time.Second, "approve form", `document.querySelector("form.decide") !== null`)
	act(t, ctx, "approve",
		chromedp.SendKeys(`form.decide input[name="comment"]`, "looks good", chromedp.ByQuery),
		chromedp.Click(`form.decide button.primary`, chromedp.ByQuery))
	waitJS(t, ctx, 60*time.Second, "deploy succeeded",
		`document.querySelector('#dag a.node[data-step="deploy"]').classList.contains("st-succeeded")`)
	var audit []struct{ Actor, Action, Comment string }
	s.do(t, "GET", "/api/v1/runs/"+gate.ID+"/audit", "", nil, &audit)
	if !strings.Contains(fmt.Sprint(audit), "ui:root approve") || !strings.Contains(fmt.Sprint(audit), "looks good") {
		t.Errorf("audit of the approval = %+v, want ui:root approve with the comment", audit)
	}

	// Hostile log content renders as inert text.
	// The long line first, so the tail the page shows holds the rest.
	hostile := s.submit(t, "ui-hostile", "steps:\n  - name: evil\n    command: |\n"+
		"      head -c 10000000 /dev/zero | tr '\\0' a\n"+
		"      echo\n"+
		"      echo '<script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\">'\n"+
		"      printf '\\033]8;;javascript:window.__pwned=3\\033\\\\click me\\033]8;;\\033\\\\\\n'\n"+
		"      printf 'bad utf8: \\377\\376 end\\n'\n"+
		"      echo after-the-hostile-lines\n")
	if got := s.waitRun(t, hostile.ID, 120*time.Second); got.State != "succeeded" {
		t.Fatalf("hostile run %s", got.State)
	}
	act(t, ctx, "open hostile run", chromedp.Navigate(s.url+"/runs/"+hostile.ID+"?step=evil"))
	waitJS(t, ctx, 20*time.Second, "tail of the hostile log", `document.getElementById("log-view").textContent.includes("after-the-hostile-lines")`)
	shown := evalString(t, ctx, `document.getElementById("log-view").textContent`)
	for _, want := range []string{`<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">`, "click me\n",
		"bad utf8: \uFFFD end\n", "aaaaaaaaaa\n"} {
		if !strings.Contains(shown, want) {
			t.Errorf("the log view lacks %q as text; its end: %q", want, tail(shown))
		}
	}
	if strings.Contains(shown, "javascript:") {
		t.Errorf("the OSC 8 link target is shown: %q", tail(shown))
	}
	if got := evalString(t, ctx, `String(window.__pwned)`); got != "undefined" {
		t.Fatalf("hostile log content ran script: __pwned = %s", got)
	}
	if n := evalString(t, ctx, `String(document.querySelectorAll('a[href^="javascript:" i], #log-view a, #log-view img, #log-view script').length)`); n != "0" {
		t.Fatalf("%s active elements came from the log", n)
	}
	if evalString(t, ctx, `String(!document.getElementById("log-truncated").classList.contains("hidden"))`) != "true" {
		t.Error("a 10 MB log should say only its end is shown")
	}
	// The page still works: its live stream still updates it.
	waitJS(t, ctx, 10*time.Second, "run state shown", `document.getElementById("run-state").textContent === "succeeded"`)

	// A POST without the CSRF token is refused, even with the session.
	var status int
	act(t, ctx, "post without CSRF", chromedp.Evaluate(fmt.Sprintf(
		`fetch("/ui/agents/%s/disable", {method: "POST", credentials: "same-origin"}).then(r => r.status)`, one.ID), &status,
		awaitPromise))
	if status != http.StatusForbidden {
		t.Errorf("POST without CSRF token = %d, want 403", status)
	}
	// The same with a plain HTTP client holding a valid session.
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	cookies := browserCookies(t, ctx)
	u, _ := url.Parse(s.url)
	jar.SetCookies(u, cookies)
	resp, err := client.PostForm(s.url+"/ui/agents/"+one.ID+"/disable", url.Values{"csrf": {"wrong"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST with a wrong CSRF token = %d, want 403", resp.StatusCode)
	}

	// A viewer made with the CLI reads but changes nothing.
	add := exec.Command(filepath.Join(binDir, "baton-server"), "user", "add", "--role", "viewer", "--data-dir", s.dataDir, "vera")
	add.Stdin = strings.NewReader("viewer-password-1\n")
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("user add: %v\n%s", err, out)
	}

	// Log out: the session is gone.
	act(t, ctx, "logout", chromedp.Navigate(s.url+"/fleet"), chromedp.Click(`.logout button`, chromedp.ByQuery))
	waitJS(t, ctx, 10*time.Second, "logged out", `location.pathname === "/login"`)
	resp, err = client.Get(s.url + "/fleet")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Errorf("the logged-out session still works: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}

	// A second browser with a fresh profile: no session, so any page leads
	// to the login page.
	ctx2 := browser(t)
	act(t, ctx2, "unauthenticated visit", chromedp.Navigate(s.url+"/runs/"+r.ID))
	waitJS(t, ctx2, 10*time.Second, "login page", `location.pathname === "/login" && document.querySelector("#password") !== null`)
	act(t, ctx2, "log in as viewer",
		chromedp.SendKeys("#name", "vera", chromedp.ByQuery),
		chromedp.SendKeys("#password", "viewer-password-1", chromedp.ByQuery),
		chromedp.Click(`button[type="submit"]`, chromedp.ByQuery))
	waitJS(t, ctx2, 10*time.Second, "back on the run page", fmt.Sprintf(`location.pathname === "/runs/%s"`, r.ID))
	if n := evalString(t, ctx2, `String(document.querySelectorAll("form.js-action").length)`); n != "0" {
		t.Errorf("a viewer sees %s action forms", n)
	}
	act(t, ctx2, "viewer post", chromedp.Evaluate(fmt.Sprintf(
		`fetch("/ui/runs/%s/retry", {method: "POST", headers: {"X-CSRF-Token": document.body.dataset.csrf}}).then(r => r.status)`, r.ID), &status,
		awaitPromise))
	if status != http.StatusForbidden {
		t.Errorf("a viewer's POST = %d, want 403", status)
	}
}

func awaitPromise(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }

// browserCookies returns the browser's cookies, for a plain HTTP client.
func browserCookies(t *testing.T, ctx context.Context) []*http.Cookie {
	t.Helper()
	var got []*network.Cookie
	act(t, ctx, "cookies", chromedp.ActionFunc(func(ctx context.Context) error {
		var err error
		got, err = network.GetCookies().Do(ctx)
		return err
	}))
	out := make([]*http.Cookie, 0, len(got))
	for _, c := range got {
		out = append(out, &http.Cookie{Name: c.Name, Value: c.Value, Path: c.Path})
	}
	return out
}
