package e2e

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/baton-ci/baton/shared/gitauth/gitauthtest"
)

// post sends a delivery to /api/v1/hooks/{provider}/{project} with the
// forge's headers and returns the status and the decoded answer.
func post(t *testing.T, s *server, provider, project string, header map[string]string, body []byte) (int, map[string]string) {
	t.Helper()
	code, ans, err := send(s, provider, project, header, body)
	if err != nil {
		t.Fatal(err)
	}
	return code, ans
}

// send is post for any goroutine.
func send(s *server, provider, project string, header map[string]string, body []byte) (int, map[string]string, error) {
	req, _ := http.NewRequest("POST", s.url+"/api/v1/hooks/"+provider+"/"+project, bytes.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]string
	json.Unmarshal(b, &out)
	return resp.StatusCode, out, nil
}

// forgeDelivery is one forge's push, as the forge sends it.
type forgeDelivery struct {
	provider string
	header   func(body []byte) map[string]string
	body     []byte
}

// runForgePush sends a delivery: 202 and queued; redelivered until it has
// made its run, which must succeed building the commit; then the same
// delivery, sent again (also several at once), answers 200 with that run.
func runForgePush(t *testing.T, s *server, project, commit string, d forgeDelivery) {
	t.Helper()
	code, ans := post(t, s, d.provider, project, d.header(d.body), d.body)
	if code != http.StatusAccepted || ans["state"] != "queued" {
		t.Fatalf("%s delivery: %d %v", d.provider, code, ans)
	}
	var runID string
	waitFor(t, 30*time.Second, "the "+d.provider+" delivery's run", func() bool {
		code, ans = post(t, s, d.provider, project, d.header(d.body), d.body)
		if ans["state"] == "failed" {
			t.Fatalf("%s delivery failed: %v", d.provider, ans)
		}
		runID = ans["run_id"]
		return code == http.StatusOK && runID != ""
	})
	got := s.waitRun(t, runID, 90*time.Second)
	if log := s.stepLog(t, runID, "build"); got.State != "succeeded" || !strings.HasSuffix(log, "checked out "+commit+"\nversion 2\nbuilt "+commit+"\n") {
		t.Fatalf("%s run %s, log %q", d.provider, got.State, log)
	}
	code, ans = post(t, s, d.provider, project, d.header(d.body), d.body)
	if code != http.StatusOK || ans["run_id"] != runID || ans["state"] != "done" {
		t.Errorf("%s redelivery: %d %v, want 200 with run %s", d.provider, code, ans, runID)
	}
	// Forges retry on timeouts: redeliveries at once all get that run.
	answers := make(chan string, 5)
	for range 5 {
		go func() {
			code, ans, err := send(s, d.provider, project, d.header(d.body), d.body)
			answers <- fmt.Sprint(code, " ", ans["run_id"], err)
		}()
	}
	for range 5 {
		if got := <-answers; got != "200 "+runID+"<nil>" {
			t.Errorf("%s concurrent redelivery: %s, want 200 %s", d.provider, got, runID)
		}
	}
}

// GitLab and Gitea pushes run end to end, each from a private repository
// on a loopback git server read with the project's credentials (GitLab: a
// token with user oauth2; Gitea: the user's name and an access token):
// real-shaped payloads and headers, signatures and tokens as the forges
// send them, one run per delivery however often it is redelivered.
func TestGitLabAndGiteaPushWebhooks(t *testing.T) {
	t.Parallel()
	const secret = "a-webhook-secret-of-32-bytes-xyz"
	repo, _ := makeRepo(t)
	head := commitFile(t, repo, "runbook.yml", "steps:\n  - name: build\n    command: cat app.txt; echo \"built $BATON_COMMIT\"\n")
	gitlab := gitauthtest.Start(t, t.TempDir(), "oauth2", "glpat-forgeToken0123456789")
	gitea := gitauthtest.Start(t, t.TempDir(), "ci-bot", "gitea0123456789abcdef0123456789abcdef0123")
	glURL, gtURL := gitlab.Publish(t, repo, "group/app"), gitea.Publish(t, repo, "org/app")

	s := startServer(t, freeAddr(t), t.TempDir())
	startAgent(t, s, s.registrationToken(t), t.TempDir(), "forges")
	waitAgents(t, s, 1)
	setupProject(t, s, "gl", map[string]any{"url": glURL, "credentials": map[string]string{"username": "oauth2", "password_secret": "GITLAB_TOKEN"}},
		secret, map[string]string{"GITLAB_TOKEN": "glpat-forgeToken0123456789"})
	setupProject(t, s, "gt", map[string]any{"url": gtURL, "credentials": map[string]string{"username": "ci-bot", "password_secret": "GITEA_TOKEN"}},
		secret, map[string]string{"GITEA_TOKEN": "gitea0123456789abcdef0123456789abcdef0123"})
	const zero = "0000000000000000000000000000000000000000"

	t.Run("gitlab", func(t *testing.T) {
		t.Parallel()
		body, _ := json.Marshal(map[string]any{
			"object_kind": "push", "event_name": "push", "before": zero, "after": head, "ref": "refs/heads/main",
			"ref_protected": true, "checkout_sha": head, "user_id": 4, "user_name": "Jo Dev", "user_username": "jo",
			"project_id": 15, "total_commits_count": 1,
			"project": map[string]any{"id": 15, "name": "app", "path_with_namespace": "group/app", "default_branch": "main",
				"web_url": "https://gitlab.example/group/app", "git_ssh_url": "git@gitlab.example:group/app.git", "git_http_url": glURL,
				"visibility_level": 0},
			"commits": []map[string]any{{"id": head, "message": "change runbook.yml\n", "title": "change runbook.yml",
				"timestamp": "2026-11-24T03:00:00+00:00", "author": map[string]string{"name": "t", "email": "t@example.com"},
				"added": []string{"runbook.yml"}, "modified": []string{}, "removed": []string{}}},
			"repository": map[string]any{"name": "app", "url": "git@gitlab.example:group/app.git", "homepage": "https://gitlab.example/group/app",
				"git_http_url": glURL, "git_ssh_url": "git@gitlab.example:group/app.git", "visibility_level": 0},
		})
		header := func([]byte) map[string]string {
			return map[string]string{"Content-Type": "application/json", "User-Agent": "GitLab/17.6.0", "X-Gitlab-Event": "Push Hook",
				"X-Gitlab-Token": secret, "X-Gitlab-Instance": "https://gitlab.example", "X-Gitlab-Webhook-UUID": "5f1d0c8e-0b0a-4a35-9a1f-1c9e3a2b7d11",
				"X-Gitlab-Event-UUID": "a9c1f1f0-7a3e-4b0e-8a53-3cf2f0b9d0e1", "Idempotency-Key": "0e3a2d51-6f0c-4b59-b1b6-7d1a8f1e9c22"}
		}
		if code, _ := post(t, s, "gitlab", "gl", map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "not-the-token",
			"Idempotency-Key": "forged"}, body); code != http.StatusUnauthorized {
			t.Errorf("a wrong X-Gitlab-Token: %d, want 401", code)
		}
		runForgePush(t, s, "gl", head, forgeDelivery{provider: "gitlab", header: header, body: body})
	})

	t.Run("gitea", func(t *testing.T) {
		t.Parallel()
		user := map[string]any{"id": 1, "login": "jo", "full_name": "Jo Dev", "email": "jo@example.com", "username": "jo"}
		commit := map[string]any{"id": head, "message": "change runbook.yml\n", "url": "https://gitea.example/org/app/commit/" + head,
			"author":    map[string]string{"name": "t", "email": "t@example.com", "username": ""},
			"committer": map[string]string{"name": "t", "email": "t@example.com", "username": ""},
			"timestamp": "2026-11-24T03:00:00Z", "added": []string{"runbook.yml"}, "removed": []string{}, "modified": []string{}}
		body, _ := json.Marshal(map[string]any{
			"ref": "refs/heads/main", "before": zero, "after": head, "compare_url": "https://gitea.example/org/app/compare/" + zero + "..." + head,
			"commits": []any{commit}, "total_commits": 1, "head_commit": commit,
			"repository": map[string]any{"id": 7, "owner": user, "name": "app", "full_name": "org/app", "private": true, "fork": false,
				"html_url": "https://gitea.example/org/app", "ssh_url": "git@gitea.example:org/app.git", "clone_url": gtURL, "default_branch": "main"},
			"pusher": user, "sender": user,
		})
		header := func(b []byte) map[string]string {
			mac := hmac.New(sha256.New, []byte(secret))
			mac.Write(b)
			sig := hex.EncodeToString(mac.Sum(nil))
			return map[string]string{"Content-Type": "application/json", "User-Agent": "Go-http-client/1.1",
				"X-Gitea-Delivery": "1b7e6c1c-3a57-4c4f-9d5e-0f7c2d3b4a51", "X-Gitea-Event": "push", "X-Gitea-Event-Type": "push",
				"X-Gitea-Signature": sig, "X-Gogs-Delivery": "1b7e6c1c-3a57-4c4f-9d5e-0f7c2d3b4a51", "X-Gogs-Event": "push",
				"X-Gogs-Signature": sig, "X-Hub-Signature": "sha1=0000", "X-Hub-Signature-256": "sha256=" + sig}
		}
		tampered := append([]byte{}, body...)
		tampered[len(tampered)-2] ^= 1
		if code, _ := post(t, s, "gitea", "gt", header(body), tampered); code != http.StatusUnauthorized {
			t.Errorf("a body changed by one byte: %d, want 401", code)
		}
		runForgePush(t, s, "gt", head, forgeDelivery{provider: "gitea", header: header, body: body})
	})
}
