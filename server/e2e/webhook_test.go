package e2e

import (
	"bytes"
	"encoding/json"
	"github.com/baton-ci/baton/shared/gitauth/gitauthtest"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baton-ci/baton/server/webhook"
)

// deliver posts a GitHub delivery to the server and returns the status and
// the decoded answer.
func deliver(t *testing.T, s *server, project, secret, id, event string, payload any) (int, map[string]string) {
	t.Helper()
	body, _ := json.Marshal(payload)
	req, _ := http.NewRequest("POST", s.url+"/api/v1/hooks/github/"+project, bytes.NewReader(body))
	req.Header.Set("X-GitHub-Delivery", id)
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-Hub-Signature-256", webhook.Sign([]byte(secret), body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]string
	json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

// commitFile commits one file in repo and returns the commit id.
func commitFile(t *testing.T, repo, name, text string) string {
	t.Helper()
	os.WriteFile(filepath.Join(repo, name), []byte(text), 0o644)
	for _, args := range [][]string{{"add", "."}, {"commit", "-q", "-m", "change " + name}} {
		gitauthtest.Git(t, repo, args...)
	}
	return gitauthtest.Git(t, repo, "rev-parse", "HEAD")
}

// A signed GitHub push starts a run of the runbook.yml at the pushed
// commit, building that commit; a redelivery starts nothing new; a bad
// signature is refused; an invalid runbook makes a failed run saying why.
func TestGitHubPushWebhook(t *testing.T) {
	t.Parallel()
	repo, _ := makeRepo(t)
	good := commitFile(t, repo, "runbook.yml", "steps:\n  - name: build\n    command: cat app.txt; echo \"at $BATON_COMMIT\"\n")
	s := startServer(t, freeAddr(t), t.TempDir())
	token := s.registrationToken(t)
	startAgent(t, s, token, t.TempDir(), "hooked", "--allow-local-sources")
	waitAgents(t, s, 1)
	const secret = "a-webhook-secret-of-32-bytes-xyz"
	if code := s.do(t, "PUT", "/api/v1/projects/web", "application/json",
		[]byte(`{"repository": {"url": "file://`+repo+`", "default_branch": "main"}}`), nil); code != 200 {
		t.Fatalf("set repository: %d", code)
	}
	if code := s.do(t, "PUT", "/api/v1/projects/web/webhook-secret", "application/json", []byte(`{"value": "`+secret+`"}`), nil); code != 204 {
		t.Fatalf("set webhook secret: %d", code)
	}
	push := func(commit string) map[string]any {
		return map[string]any{"ref": "refs/heads/main", "after": commit, "repository": map[string]string{"full_name": "o/r", "clone_url": "https://example.invalid/o/r.git"}}
	}
	start := time.Now()
	code, ans := deliver(t, s, "web", secret, "delivery-1", "push", push(good))
	if code != 202 || ans["state"] != "queued" {
		t.Fatalf("delivery: %d %v", code, ans)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("the webhook took %s to answer; it should only record and queue", took)
	}
	var runID string
	waitFor(t, 30*time.Second, "the delivery's run", func() bool {
		code, ans = deliver(t, s, "web", secret, "delivery-1", "push", push(good))
		runID = ans["run_id"]
		return code == 200 && runID != ""
	})
	got := s.waitRun(t, runID, 60*time.Second)
	if log := s.stepLog(t, runID, "build"); got.State != "succeeded" || !strings.HasSuffix(log, "checked out "+good+"\nversion 2\nat "+good+"\n") {
		t.Fatalf("run %s, log %q", got.State, log)
	}
	var view struct{ Trigger string }
	s.do(t, "GET", "/api/v1/runs/"+runID, "", nil, &view)
	if view.Trigger != "webhook" {
		t.Errorf("trigger %q", view.Trigger)
	}
	if code, _ := deliver(t, s, "web", "not-the-secret-at-all-1234567890", "delivery-2", "push", push(good)); code != 401 {
		t.Errorf("bad signature: %d, want 401", code)
	}

	bad := commitFile(t, repo, "runbook.yml", "steps:\n  - name: build\n    command: x\n    depends_on: nowhere\n")
	deliver(t, s, "web", secret, "delivery-3", "push", push(bad))
	var badRun string
	waitFor(t, 30*time.Second, "the invalid runbook's run", func() bool {
		_, ans = deliver(t, s, "web", secret, "delivery-3", "push", push(bad))
		badRun = ans["run_id"]
		return badRun != ""
	})
	var failed struct {
		State, Error string
	}
	s.do(t, "GET", "/api/v1/runs/"+badRun, "", nil, &failed)
	if failed.State != "failed" || !strings.Contains(failed.Error, "runbook.yml:2") || !strings.Contains(failed.Error, "nowhere") {
		t.Errorf("invalid runbook run: %+v", failed)
	}

	// A runbook that takes only release branches ignores a push to main.
	filtered := commitFile(t, repo, "runbook.yml", "on:\n  push:\n    branches: [\"release/*\"]\nsteps:\n  - name: build\n    command: x\n")
	deliver(t, s, "web", secret, "delivery-4", "push", push(filtered))
	waitFor(t, 30*time.Second, "the filtered push to be ignored", func() bool {
		_, ans = deliver(t, s, "web", secret, "delivery-4", "push", push(filtered))
		return ans["state"] == "ignored"
	})
	if !strings.Contains(ans["ignored"], `branch "main" matches none of on.push.branches`) || ans["run_id"] != "" {
		t.Errorf("filtered push: %v", ans)
	}
}
