package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/baton-ci/baton/shared/gitauth/gitauthtest"
	"github.com/baton-ci/baton/shared/protocol"
)

// A repository's credentials are secret names: the API keeps and shows
// the names, refuses what cannot work (or would leak), and never holds a
// value.
func TestRepositoryCredentialsSettings(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	put := func(repo map[string]any) *response {
		return ts.admin(t, "PUT", "/api/v1/projects/priv", map[string]any{"repository": repo})
	}
	res := put(map[string]any{"url": "https://git.example/o/r.git", "credentials": map[string]string{"username": "x-access-token", "password_secret": "REPO_TOKEN"}})
	wantStatus(t, "https token", res, http.StatusOK)
	var p protocol.Project
	res.decode(t, &p)
	if c := p.Repository.Credentials; c == nil || c.Username != "x-access-token" || c.PasswordSecret != "REPO_TOKEN" {
		t.Errorf("credentials %+v", p.Repository.Credentials)
	}
	wantStatus(t, "ssh key", put(map[string]any{"url": "git@git.example:o/r.git", "credentials": map[string]string{"ssh_key_secret": "DEPLOY_KEY",
		"known_hosts": "git.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"}}), http.StatusOK)
	for _, c := range []struct {
		what string
		repo map[string]any
		want string
	}{
		{"a token in the URL", map[string]any{"url": "https://x-access-token:ghp_abcdef123456@git.example/o/r.git"}, "holds a password"},
		{"no username", map[string]any{"url": "https://git.example/o/r.git", "credentials": map[string]string{"password_secret": "REPO_TOKEN"}}, "username and password_secret"},
		{"a key over https", map[string]any{"url": "https://git.example/o/r.git", "credentials": map[string]string{"ssh_key_secret": "K"}}, "ssh_key_secret and known_hosts are for"},
		{"a password over ssh", map[string]any{"url": "ssh://git@git.example/o/r.git", "credentials": map[string]string{"username": "u", "password_secret": "P"}}, "SSH address"},
		{"plain http", map[string]any{"url": "http://git.example/o/r.git", "credentials": map[string]string{"username": "u", "password_secret": "P"}}, "plain http"},
		{"a bad secret name", map[string]any{"url": "https://git.example/o/r.git", "credentials": map[string]string{"username": "u", "password_secret": "A-B"}}, "name a project secret"},
		{"git://", map[string]any{"url": "git://git.example/o/r.git", "credentials": map[string]string{"username": "u", "password_secret": "P"}}, "https or ssh only"},
	} {
		res := put(c.repo)
		wantStatus(t, c.what, res, http.StatusBadRequest)
		if msg := res.errorMessage(t); !strings.Contains(msg, c.want) || strings.Contains(msg, "ghp_abcdef123456") {
			t.Errorf("%s: %q, want it to say %q", c.what, msg, c.want)
		}
	}
	wantStatus(t, "public again", put(map[string]any{"url": "https://git.example/o/r.git"}), http.StatusOK)
	var public protocol.Project
	ts.admin(t, "GET", "/api/v1/projects/priv", nil).decode(t, &public)
	if public.Repository == nil || public.Repository.Credentials != nil {
		t.Errorf("credentials kept after they were dropped: %+v", public.Repository)
	}
}

// labelledAgent registers an agent with labels.
func (ts *testServer) labelledAgent(t *testing.T, name string, labels ...string) *testAgent {
	t.Helper()
	signing, hpke := newAgentKeys(t)
	a := &testAgent{ID: uuid.NewString(), Name: name, Signing: signing, HPKE: hpke}
	req := registerRequest(ts.registrationToken(t), a.ID, name, signing, hpke)
	req.Labels = labels
	wantStatus(t, "register", ts.register(t, req), http.StatusOK)
	var tok protocol.TokenResponse
	ts.requestToken(t, a.ID, signing, time.Now()).decode(t, &tok)
	a.Token = tok.Token
	return a
}

// deliveryRun redelivers a GitHub delivery until it has made its run.
func (ts *testServer) deliveryRun(t *testing.T, project, secret, id, event string, body []byte) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		var ans map[string]string
		ts.hook(t, project, secret, id, event, body).decode(t, &ans)
		if ans["state"] == "failed" {
			t.Fatalf("delivery %s failed: %v", id, ans)
		}
		if ans["run_id"] != "" {
			return ans["run_id"]
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no run from delivery %s", id)
	return ""
}

// The server fetches a private repository with the project's credentials;
// without them the webhook's run fails naming the repository. Agents get
// the credentials, sealed, for sources that are the project's repository
// in trusted runs only: not for a fork's code, not for an untrusted run
// until an admin trusts it.
func TestPrivateRepositoryCredentials(t *testing.T) {
	t.Parallel()
	const token, secret = "ghs_privateRepoToken0123456789", "0123456789abcdef-secret"
	work, head := gitRepo(t, "steps:\n  - name: test\n    command: make test\n")
	srv := gitauthtest.Start(t, t.TempDir(), "x-access-token", token)
	url := srv.Publish(t, work, "org/app")
	ts := newTestServer(t)
	wantStatus(t, "repository", ts.admin(t, "PUT", "/api/v1/projects/app", map[string]any{"repository": map[string]any{"url": url,
		"credentials": map[string]string{"username": "x-access-token", "password_secret": "REPO_TOKEN"}}}), 200)
	wantStatus(t, "hook secret", ts.admin(t, "PUT", "/api/v1/projects/app/webhook-secret", map[string]string{"value": secret}), 204)
	push, _ := json.Marshal(map[string]any{"ref": "refs/heads/main", "after": head, "repository": map[string]string{"full_name": "org/app", "clone_url": url}})

	// The secret the credentials name is not set yet: a failed run says so.
	failed := ts.getRun(t, ts.deliveryRun(t, "app", secret, "push-1", "push", push))
	if failed.State != "failed" || !strings.Contains(failed.Error, url) || !strings.Contains(failed.Error, "REPO_TOKEN") {
		t.Errorf("run without the credential's secret: %s %q", failed.State, failed.Error)
	}
	// Meanwhile runs that do not build the repository are not held up.
	agent := ts.newAgent(t, "trusted")
	plain := ts.createRun(t, "app", "steps:\n  - name: plain\n    command: \"true\"\n")
	as := agent.reserveStep(t, ts, "plain")
	if as.RunID != plain.ID || as.SourceCredentials != nil {
		t.Errorf("plain run's assignment: %+v", as)
	}
	wantStatus(t, "complete plain", agent.complete(t, ts, as.StepID, protocol.StepResult{Attempt: 1, ExitCode: new(0)}), http.StatusNoContent)

	// A wrong token: git is refused, and the run says which repository.
	wantStatus(t, "wrong token", ts.admin(t, "PUT", "/api/v1/projects/app/secrets/REPO_TOKEN", map[string]string{"value": "ghs_revokedToken00000"}), 204)
	failed = ts.getRun(t, ts.deliveryRun(t, "app", secret, "push-2", "push", push))
	if failed.State != "failed" || !strings.Contains(failed.Error, "fetch "+url) || strings.Contains(failed.Error, "ghs_revoked") {
		t.Errorf("run with a wrong token: %s %q", failed.State, failed.Error)
	}

	wantStatus(t, "token", ts.admin(t, "PUT", "/api/v1/projects/app/secrets/REPO_TOKEN", map[string]string{"value": token}), 204)
	run := ts.getRun(t, ts.deliveryRun(t, "app", secret, "push-3", "push", push))
	if run.Error != "" || len(run.Steps) != 1 {
		t.Fatalf("run from the private repository: %q %+v", run.Error, run.Steps)
	}
	as = agent.reserveStep(t, ts, "test")
	if c := as.SourceCredentials; as.Source == nil || as.Source.URL != url || c == nil || c.Username != "x-access-token" || c.Password != token {
		t.Errorf("assignment source %+v credentials %+v: want the repository's", as.Source, c)
	}
	if as.CISourceCredentials != nil || len(as.Secrets) != 0 {
		t.Errorf("assignment carries more: %+v %v", as.CISourceCredentials, as.Secrets)
	}
	if strings.Contains(string(ts.admin(t, "GET", "/api/v1/runs/"+run.ID, nil).Body), token) {
		t.Error("the run's view shows the token")
	}

	// A pull request from a fork: no credentials for its untrusted steps,
	// neither for the fork's code nor for the project's CI source.
	pr, _ := json.Marshal(map[string]any{"action": "opened", "number": 3, "pull_request": map[string]any{
		"head": map[string]any{"sha": "fedcba9876543210fedcba9876543210fedcba98", "repo": map[string]string{"full_name": "mallory/app", "clone_url": "https://forge.example/mallory/app.git"}},
		"base": map[string]any{"ref": "main", "repo": map[string]string{"full_name": "org/app", "clone_url": url}}}})
	fork := ts.getRun(t, ts.deliveryRun(t, "app", secret, "pr-1", "pull_request", pr))
	if !fork.Untrusted || fork.CISource == nil || fork.CISource.URL != url {
		t.Fatalf("fork run untrusted=%t ci %+v (error %q)", fork.Untrusted, fork.CISource, fork.Error)
	}
	untrusted := ts.labelledAgent(t, "untrusted", "untrusted")
	as = untrusted.reserveStep(t, ts, "test")
	if as.RunID != fork.ID || as.SourceCredentials != nil || as.CISourceCredentials != nil {
		t.Errorf("untrusted assignment of run %s: credentials %+v %+v", as.RunID, as.SourceCredentials, as.CISourceCredentials)
	}

	// Trusted by an admin, a fork's run gets them for its CI source only.
	again := ts.getRun(t, ts.deliveryRun(t, "app", secret, "pr-2", "pull_request", pr))
	wantStatus(t, "trust", ts.admin(t, "POST", "/api/v1/runs/"+again.ID+"/trust", nil), http.StatusOK)
	as = agent.reserveStep(t, ts, "test")
	if as.RunID != again.ID || as.SourceCredentials != nil || as.CISourceCredentials == nil || as.CISourceCredentials.Password != token {
		t.Errorf("trusted fork assignment of run %s: credentials %+v %+v", as.RunID, as.SourceCredentials, as.CISourceCredentials)
	}
}
