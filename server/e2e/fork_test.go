package e2e

import (
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// waitDeliveryRun redelivers until the delivery has made its run.
func waitDeliveryRun(t *testing.T, s *server, project, secret, id string, payload any) string {
	t.Helper()
	var runID string
	waitFor(t, 30*time.Second, "the run of delivery "+id, func() bool {
		_, ans := deliver(t, s, project, secret, id, "pull_request", payload)
		if ans["state"] == "failed" {
			t.Fatalf("delivery %s failed: %v", id, ans)
		}
		runID = ans["run_id"]
		return runID != ""
	})
	return runID
}

// A pull request from a fork runs the default branch's runbook against the
// fork's code with no secrets: the step itself sees none. Once an admin
// trusts the run, its steps get them.
func TestForkPullRequestGetsNoSecretsUntilTrusted(t *testing.T) {
	t.Parallel()
	// The project's repository: its runbook prints what the step sees.
	repo, _ := makeRepo(t)
	commitFile(t, repo, "runbook.yml", "steps:\n  - name: test\n    secrets: [TOKEN]\n    command: |\n"+
		"      echo \"code: $(cat app.txt)\"\n      echo \"token: [${TOKEN:-none}]\"\n")
	// The fork, served over (dumb) HTTP on loopback, with its own app.txt
	// and a runbook that would print the token if it were run.
	fork, _ := makeRepo(t)
	commitFile(t, fork, "app.txt", "fork code\n")
	head := commitFile(t, fork, "runbook.yml", "steps:\n  - name: test\n    command: |\n      echo \"stolen: $TOKEN\"\n")
	if out, err := exec.Command("git", "-C", fork, "update-server-info").CombinedOutput(); err != nil {
		t.Fatalf("update-server-info: %v %s", err, out)
	}
	srv := httptest.NewServer(http.StripPrefix("/fork.git/", http.FileServer(http.Dir(filepath.Join(fork, ".git")))))
	defer srv.Close()

	s := startServer(t, freeAddr(t), t.TempDir())
	token := s.registrationToken(t)
	const secret = "a-webhook-secret-of-32-bytes-xyz"
	for _, c := range []struct{ path, body string }{
		{"/api/v1/projects/oss", `{"repository": {"url": "file://` + repo + `", "default_branch": "main"}}`},
		{"/api/v1/projects/oss/webhook-secret", `{"value": "` + secret + `"}`},
		{"/api/v1/projects/oss/secrets/TOKEN", `{"value": "s3cret-token-value"}`},
	} {
		if code := s.do(t, "PUT", c.path, "application/json", []byte(c.body), nil); code >= 300 {
			t.Fatalf("PUT %s: %d", c.path, code)
		}
	}
	pr := func(n int) map[string]any {
		return map[string]any{"action": "opened", "number": n, "pull_request": map[string]any{
			"head": map[string]any{"sha": head, "repo": map[string]string{"full_name": "mallory/oss", "clone_url": srv.URL + "/fork.git"}},
			"base": map[string]any{"ref": "main", "repo": map[string]string{"full_name": "org/oss", "clone_url": "https://example.invalid/org/oss.git"}}}}
	}

	// An agent for untrusted work runs the first pull request's run.
	untrusted := startAgent(t, s, token, t.TempDir(), "untrusted", "--labels", "untrusted", "--allow-local-sources")
	waitAgents(t, s, 1)
	first := waitDeliveryRun(t, s, "oss", secret, "pr-1", pr(1))
	got := s.waitRun(t, first, 60*time.Second)
	var view struct{ Error string }
	s.do(t, "GET", "/api/v1/runs/"+first, "", nil, &view)
	if view.Error != "" {
		t.Fatalf("the run failed before it started: %s", view.Error)
	}
	log := s.stepLog(t, first, "test")
	if got.State != "succeeded" || !strings.Contains(log, "code: fork code\n") || !strings.Contains(log, "token: [none]\n") ||
		strings.Contains(log, "stolen") {
		t.Fatalf("untrusted run %s, log %q: want the fork's code, the trusted runbook and no token", got.State, log)
	}
	untrusted.stop()

	// The second waits for an untrusted agent; trusted by an admin, it
	// runs on an ordinary agent, with the secret.
	second := waitDeliveryRun(t, s, "oss", secret, "pr-2", pr(2))
	if code := s.do(t, "POST", "/api/v1/runs/"+second+"/trust", "", nil, nil); code != 200 {
		t.Fatalf("trust: %d", code)
	}
	startAgent(t, s, token, t.TempDir(), "trusted", "--allow-local-sources")
	got = s.waitRun(t, second, 60*time.Second)
	log = s.stepLog(t, second, "test")
	t.Logf("untrusted log ends %q; trusted log ends %q", tail(s.stepLog(t, first, "test")), tail(log))
	if got.State != "succeeded" || !strings.Contains(log, "token: [***]\n") {
		t.Fatalf("trusted run %s, log %q: want the (masked) token", got.State, log)
	}
}
