package api_test

import (
	"bytes"
	"encoding/json"
	"github.com/baton-ci/baton/shared/gitauth/gitauthtest"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-ci/baton/server/webhook"
	"github.com/baton-ci/baton/shared/protocol"
)

// gitRepo makes a repository whose main branch holds runbook (and lib.yml)
// and returns its path and head commit.
func gitRepo(t *testing.T, runbook string) (string, string) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("git is required when CI=true")
		}
		t.Skip("SKIPPING: git is not installed")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "runbook.yml"), []byte(runbook), 0o644)
	os.WriteFile(filepath.Join(dir, "lib.yml"), []byte("steps:\n  - name: lint\n    command: echo lint\n"), 0o644)
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "."}, {"commit", "-q", "-m", "one"}} {
		gitauthtest.Git(t, dir, args...)
	}
	return dir, gitauthtest.Git(t, dir, "rev-parse", "HEAD")
}

func (ts *testServer) hook(t *testing.T, project, secret, id, event string, body []byte) *response {
	t.Helper()
	return ts.do(t, request{Method: http.MethodPost, Path: "/api/v1/hooks/github/" + project, ContentType: "application/json",
		Body: body, Header: map[string]string{"X-GitHub-Delivery": id, "X-GitHub-Event": event,
			"X-Hub-Signature-256": webhook.Sign([]byte(secret), body)}})
}

// A pull request from a fork runs the default branch's runbook (with its
// includes) against the fork's commit, without secrets, only on agents
// labelled untrusted.
func TestForkPullRequestIsUntrusted(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	repo, head := gitRepo(t, "include:\n  - path: lib.yml\n    as: lib\nsteps:\n  - name: test\n    command: make test\n    secrets: [TOKEN]\n")
	const secret = "0123456789abcdef-secret"
	wantStatus(t, "repository", ts.admin(t, "PUT", "/api/v1/projects/oss", map[string]any{"repository": map[string]string{"url": "file://" + repo}}), 200)
	wantStatus(t, "hook secret", ts.admin(t, "PUT", "/api/v1/projects/oss/webhook-secret", map[string]string{"value": secret}), 204)
	wantStatus(t, "TOKEN", ts.admin(t, "PUT", "/api/v1/projects/oss/secrets/TOKEN", map[string]string{"value": "token-value"}), 204)
	res := ts.admin(t, "GET", "/api/v1/projects/oss/secrets", nil)
	if strings.Contains(string(res.Body), "WEBHOOK") {
		t.Errorf("the webhook secret is listed: %s", res.Body)
	}
	const forkSHA = "fedcba9876543210fedcba9876543210fedcba98"
	body, _ := json.Marshal(map[string]any{"action": "opened", "number": 9, "pull_request": map[string]any{
		"head": map[string]any{"sha": forkSHA, "repo": map[string]string{"full_name": "mallory/oss", "clone_url": "https://forge.example/mallory/oss.git"}},
		"base": map[string]any{"ref": "main", "repo": map[string]string{"full_name": "org/oss", "clone_url": "https://forge.example/org/oss.git"}}}})
	wantStatus(t, "delivery", ts.hook(t, "oss", secret, "pr-1", "pull_request", body), http.StatusAccepted)
	var runID string
	deadline := time.Now().Add(20 * time.Second)
	for runID == "" && time.Now().Before(deadline) {
		var ans map[string]string
		res := ts.hook(t, "oss", secret, "pr-1", "pull_request", body)
		res.decode(t, &ans)
		if ans["state"] == "failed" {
			t.Fatalf("delivery failed: %s", res.Body)
		}
		runID = ans["run_id"]
		time.Sleep(50 * time.Millisecond)
	}
	if runID == "" {
		t.Fatal("no run from the delivery")
	}
	run := ts.getRun(t, runID)
	if run.Source == nil || run.Source.URL != "https://forge.example/mallory/oss.git" || run.Source.Commit != forkSHA ||
		run.CISource == nil || run.CISource.Commit != head || run.Trigger != "webhook" {
		t.Errorf("run sources %+v %+v trigger %s", run.Source, run.CISource, run.Trigger)
	}
	if len(run.Steps) != 2 {
		t.Fatalf("steps %+v (error %q), want the include's lint and test", run.Steps, run.Error)
	}
	for _, st := range run.Steps {
		if !strings.Contains(strings.Join(st.RunsOn, ","), "untrusted") || !strings.Contains(st.Waiting, "untrusted") {
			t.Errorf("step %s runs_on %v waiting %q: want only untrusted agents", st.Name, st.RunsOn, st.Waiting)
		}
	}
	agent := ts.newAgent(t, "trusted-only")
	wantStatus(t, "an agent without the untrusted label", agent.reserve(t, ts, "0s"), http.StatusNoContent)
	if !run.Untrusted {
		t.Error("the fork's run is not marked untrusted")
	}

	// Retrying it (once it ended) is no way around the fork rules.
	wantStatus(t, "cancel", ts.admin(t, "POST", "/api/v1/runs/"+runID+"/cancel", nil), http.StatusOK)
	res = ts.admin(t, "POST", "/api/v1/runs/"+runID+"/retry", nil)
	wantStatus(t, "retry", res, http.StatusCreated)
	var retried protocol.Run
	res.decode(t, &retried)
	if !retried.Untrusted {
		t.Error("the retry of an untrusted run is trusted")
	}
	for _, st := range retried.Steps {
		if !strings.Contains(strings.Join(st.RunsOn, ","), "untrusted") {
			t.Errorf("retried step %s runs_on %v", st.Name, st.RunsOn)
		}
	}

	// An admin vouches for it: its steps get the secrets and any agent.
	res = ts.admin(t, "POST", "/api/v1/runs/"+retried.ID+"/trust", nil)
	wantStatus(t, "trust", res, http.StatusOK)
	wantStatus(t, "trust twice", ts.admin(t, "POST", "/api/v1/runs/"+retried.ID+"/trust", nil), http.StatusConflict)
	got := map[string]bool{}
	for range 2 {
		res := agent.reserve(t, ts, "0s")
		wantStatus(t, "reserve after trust", res, http.StatusOK)
		as := agent.open(t, ts, res)
		got[as.StepName] = true
		if as.StepName == "test" && as.Secrets["TOKEN"] != "token-value" {
			t.Errorf("trusted step secrets %v", as.Secrets)
		}
	}
	if !got["test"] {
		t.Errorf("reserved %v after trust", got)
	}
}

// A delivery is read only up to 25 MiB.
func TestHookBodyCap(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	big := bytes.Repeat([]byte("x"), webhook.MaxBody+1)
	res := ts.do(t, request{Method: http.MethodPost, Path: "/api/v1/hooks/github/p", Body: big,
		Header: map[string]string{"X-GitHub-Delivery": "d", "X-GitHub-Event": "push"}})
	wantStatus(t, "oversized delivery", res, http.StatusRequestEntityTooLarge)
	var e protocol.Error
	res.decode(t, &e)
	if !strings.Contains(e.Error, "26214400 bytes") {
		t.Errorf("413 message %q does not name the limit", e.Error)
	}
}

// The same delivery sent 50 times at once starts exactly one run; a body
// changed by one byte is refused.
func TestConcurrentRedeliveriesStartOneRun(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	repo, head := gitRepo(t, "steps:\n  - name: build\n    command: make\n")
	const secret = "0123456789abcdef-secret"
	wantStatus(t, "repository", ts.admin(t, "PUT", "/api/v1/projects/busy", map[string]any{"repository": map[string]string{"url": "file://" + repo}}), 200)
	wantStatus(t, "hook secret", ts.admin(t, "PUT", "/api/v1/projects/busy/webhook-secret", map[string]string{"value": secret}), 204)
	body, _ := json.Marshal(map[string]any{"ref": "refs/heads/main", "after": head,
		"repository": map[string]string{"full_name": "o/r", "clone_url": "https://example.invalid/o/r.git"}})
	tampered := append([]byte(nil), body...)
	tampered[len(tampered)-3] ^= 1
	res := ts.do(t, request{Method: http.MethodPost, Path: "/api/v1/hooks/github/busy", Body: tampered,
		Header: map[string]string{"X-GitHub-Delivery": "x", "X-GitHub-Event": "push", "X-Hub-Signature-256": webhook.Sign([]byte(secret), body)}})
	wantStatus(t, "one byte changed", res, http.StatusUnauthorized)
	var wg sync.WaitGroup
	statuses := make(chan int, 50)
	for range 50 {
		wg.Go(func() { statuses <- ts.hook(t, "busy", secret, "same-delivery", "push", body).Status })
	}
	wg.Wait()
	close(statuses)
	accepted := 0
	for st := range statuses {
		switch st {
		case http.StatusAccepted:
			accepted++
		case http.StatusOK:
		default:
			t.Errorf("status %d", st)
		}
	}
	if accepted != 1 {
		t.Errorf("%d deliveries accepted, want 1 (the rest answer 200)", accepted)
	}
	agent := ts.newAgent(t, "one")
	deadline := time.Now().Add(20 * time.Second)
	var res2 *response
	for time.Now().Before(deadline) {
		if res2 = agent.reserve(t, ts, "1s"); res2.Status == http.StatusOK {
			break
		}
	}
	wantStatus(t, "the delivery's run", res2, http.StatusOK)
	time.Sleep(500 * time.Millisecond)
	wantStatus(t, "a second run", agent.reserve(t, ts, "0s"), http.StatusNoContent)
}
