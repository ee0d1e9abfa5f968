package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/baton-ci/baton/shared/gitauth/gitauthtest"
)

// setupProject sets a project's repository (with credentials, when given)
// and its webhook secret, and its secrets.
func setupProject(t *testing.T, s *server, project string, repo map[string]any, hookSecret string, secrets map[string]string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"repository": repo})
	if code := s.do(t, "PUT", "/api/v1/projects/"+project, "application/json", body, nil); code != 200 {
		t.Fatalf("set the repository of %s: %d", project, code)
	}
	if code := s.do(t, "PUT", "/api/v1/projects/"+project+"/webhook-secret", "application/json", []byte(`{"value": "`+hookSecret+`"}`), nil); code != 204 {
		t.Fatalf("set the webhook secret of %s: %d", project, code)
	}
	for name, value := range secrets {
		body, _ := json.Marshal(map[string]string{"value": value})
		if code := s.do(t, "PUT", "/api/v1/projects/"+project+"/secrets/"+name, "application/json", body, nil); code != 204 {
			t.Fatalf("set secret %s of %s: %d", name, project, code)
		}
	}
}

// hookRun redelivers a GitHub delivery until it has made its run.
func hookRun(t *testing.T, s *server, project, secret, id string, payload any) string {
	t.Helper()
	var runID string
	waitFor(t, 30*time.Second, "the run of delivery "+id, func() bool {
		_, ans := deliver(t, s, project, secret, id, "push", payload)
		if ans["state"] == "failed" {
			t.Fatalf("delivery %s failed: %v", id, ans)
		}
		runID = ans["run_id"]
		return runID != ""
	})
	return runID
}

// A private repository on a loopback git server that demands basic
// authentication: a push to the project that has its credentials runs
// runbook.yml as of the pushed commit, and the agent clones the same
// commit into the run with them. Without the credential (or with a wrong
// one) the run fails naming the repository. The token appears in no
// server or agent output, no step log, not in the step's environment or
// the checkout's .git, and not in plaintext in the server's data dir.
func TestPrivateRepositoryPushWebhook(t *testing.T) {
	t.Parallel()
	const token, wrong = "glpat-e2ePrivateRepoToken0123", "glpat-e2eRevokedToken99999"
	const secret = "a-webhook-secret-of-32-bytes-xyz"
	repo, _ := makeRepo(t)
	head := commitFile(t, repo, "runbook.yml", `steps:
  - name: build
    command: |
      cat app.txt
      echo "at $BATON_COMMIT"
      echo "remote $(sed -n 's/^[[:space:]]*url = //p' .git/config)"
      env | grep -i -e authorization -e GIT_CONFIG -e extraheader -e password && echo "CREDENTIALS IN THE STEP'S ENVIRONMENT"
      grep -ri -e extraheader -e authorization .git/config && echo "CREDENTIALS IN .git"
      echo done
`)
	forge := gitauthtest.Start(t, t.TempDir(), "oauth2", token)
	url := forge.Publish(t, repo, "team/app")

	dataDir := t.TempDir()
	s := startServer(t, freeAddr(t), dataDir)
	agent := startAgent(t, s, s.registrationToken(t), t.TempDir(), "private") // no --allow-local-sources: it is a network repository
	waitAgents(t, s, 1)
	cred := map[string]string{"username": "oauth2", "password_secret": "REPO_TOKEN"}
	setupProject(t, s, "app", map[string]any{"url": url, "default_branch": "main", "credentials": cred}, secret, map[string]string{"REPO_TOKEN": token})
	setupProject(t, s, "nocred", map[string]any{"url": url}, secret, nil)
	setupProject(t, s, "badcred", map[string]any{"url": url, "credentials": cred}, secret, map[string]string{"REPO_TOKEN": wrong})
	push := map[string]any{"ref": "refs/heads/main", "after": head, "repository": map[string]string{"full_name": "team/app", "clone_url": url}}

	// (a, c) The push runs the private runbook; the agent clones the
	// pushed commit with the credentials from its sealed assignment.
	runID := hookRun(t, s, "app", secret, "private-1", push)
	got := s.waitRun(t, runID, 90*time.Second)
	log := s.stepLog(t, runID, "build")
	if got.State != "succeeded" || !strings.Contains(log, "checked out "+head+"\nversion 2\nat "+head+"\nremote "+url+"\ndone\n") {
		t.Fatalf("run %s (%+v), log:\n%s", got.State, got.Steps, log)
	}

	// A later push: the server's mirror fetches with the credentials.
	later := commitFile(t, repo, "app.txt", "version 3\n")
	forge.Publish(t, repo, "team/app")
	push["after"] = later
	runID = hookRun(t, s, "app", secret, "private-2", push)
	if got := s.waitRun(t, runID, 90*time.Second); got.State != "succeeded" || !strings.Contains(s.stepLog(t, runID, "build"), "version 3\nat "+later+"\n") {
		t.Fatalf("later push: run %s, log:\n%s", got.State, s.stepLog(t, runID, "build"))
	}

	// (b) Without the credential, or with a wrong one: a failed run that
	// names the repository and says why, showing nothing secret.
	for _, project := range []string{"nocred", "badcred"} {
		failedID := hookRun(t, s, project, secret, project+"-1", push)
		var failed struct{ State, Error string }
		s.do(t, "GET", "/api/v1/runs/"+failedID, "", nil, &failed)
		t.Logf("%s: %s", project, failed.Error)
		if failed.State != "failed" || !strings.Contains(failed.Error, "cannot read runbook.yml: fetch "+url) ||
			!strings.Contains(failed.Error, "the repository refused access") {
			t.Errorf("%s: run %s %q, want a failure naming %s", project, failed.State, failed.Error, url)
		}
		if strings.Contains(failed.Error, token) || strings.Contains(failed.Error, wrong) || strings.Contains(failed.Error, "***") {
			t.Errorf("%s: the error shows a credential: %q", project, failed.Error)
		}
	}

	// An agent's clone without the credential fails too, naming it.
	body, _ := json.Marshal(map[string]any{"project": "nocred", "runbook": "steps:\n  - name: build\n    command: cat app.txt\n",
		"source": map[string]string{"type": "git", "url": url, "commit": head}})
	var run runView
	if code := s.do(t, "POST", "/api/v1/runs", "application/json", body, &run); code != 201 {
		t.Fatalf("create run: %d", code)
	}
	got = s.waitRun(t, run.ID, 60*time.Second)
	if st := got.step(t, "build"); got.State != "failed" || st.Reason != "infra" || !strings.Contains(st.Error, url) {
		t.Errorf("clone without credentials: run %s, step %+v: want an infra failure naming %s", got.State, st, url)
	}
	if forge.Denied.Load() == 0 || forge.Served.Load() == 0 {
		t.Errorf("the git server refused %d and served %d requests", forge.Denied.Load(), forge.Served.Load())
	}

	// (d) The token is nowhere: outputs, logs, data dir.
	noLeak := map[string]string{"the step log": log, "the failed clone's log": s.stepLog(t, run.ID, "build")}
	s.stop()
	agent.stop()
	noLeak["the server output"], noLeak["the agent output"] = s.output(), agent.output()
	var err error
	if noLeak["the server's data dir"], err = readAll(dataDir); err != nil {
		t.Fatal(err)
	}
	for what, text := range noLeak {
		for _, v := range []string{token, wrong} {
			if strings.Contains(text, v) {
				t.Errorf("%s holds the token %s", what, v)
			}
		}
	}
	if !strings.Contains(noLeak["the server output"], "run created from webhook") {
		t.Error("the server output is not what the test thinks it greps")
	}
}
