package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/baton-ci/baton/shared/protocol"
)

// The same Idempotency-Key never starts two runs of a project: the second
// request answers 200 with the first run.
func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	create := func(project, key string) *response {
		body := mustJSON(t, protocol.CreateRunRequest{Project: project, Runbook: "steps:\n  - name: a\n    command: x\n"})
		return ts.do(t, request{Method: http.MethodPost, Path: "/api/v1/runs", Auth: "Bearer " + adminToken,
			ContentType: "application/json", Body: body, Header: map[string]string{"Idempotency-Key": key}})
	}
	var first, again, other protocol.Run
	res := create("idem", "deploy-42")
	wantStatus(t, "first", res, http.StatusCreated)
	res.decode(t, &first)
	res = create("idem", "deploy-42")
	wantStatus(t, "again", res, http.StatusOK)
	res.decode(t, &again)
	if again.ID != first.ID {
		t.Errorf("the same key started run %s after %s", again.ID, first.ID)
	}
	res = create("other", "deploy-42")
	wantStatus(t, "other project", res, http.StatusCreated)
	res.decode(t, &other)
	if other.ID == first.ID {
		t.Error("a key is shared across projects")
	}
	wantStatus(t, "no key", create("idem", ""), http.StatusCreated)
}

// Retry starts an ended run again as a new run from the same runbook,
// included files and params; a run still going cannot be retried.
func TestRetryRun(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	agent := ts.newAgent(t, "retrier")
	req := protocol.CreateRunRequest{Project: "retry",
		Runbook: "params:\n  who: {type: string}\ninclude:\n  - path: lib.yml\n    as: lib\nsteps:\n  - name: a\n    command: echo ${{ params.who }}\n",
		Files:   map[string]string{"lib.yml": "steps:\n  - name: b\n    command: echo b\n"},
		Params:  map[string]any{"who": "me"}}
	res := ts.admin(t, http.MethodPost, "/api/v1/runs", req)
	wantStatus(t, "create", res, http.StatusCreated)
	var run protocol.Run
	res.decode(t, &run)
	wantStatus(t, "retry a running run", ts.admin(t, http.MethodPost, "/api/v1/runs/"+run.ID+"/retry", nil), http.StatusConflict)
	for range 2 {
		res := agent.reserve(t, ts, "0s")
		wantStatus(t, "reserve", res, http.StatusOK)
		as := agent.open(t, ts, res)
		wantStatus(t, "fail "+as.StepName, agent.complete(t, ts, as.StepID, protocol.StepResult{Attempt: 1, ExitCode: new(1)}), http.StatusNoContent)
	}
	res = ts.admin(t, http.MethodPost, "/api/v1/runs/"+run.ID+"/retry", nil)
	wantStatus(t, "retry", res, http.StatusCreated)
	var again protocol.Run
	res.decode(t, &again)
	if again.ID == run.ID || again.Trigger != "retry" || again.RetryOf != run.ID || again.Params["who"] != "me" || len(again.Steps) != 2 {
		t.Errorf("retry = %+v", again)
	}
	as := agent.reserveStep(t, ts, "a")
	if as.Command != "echo me" || as.RunID != again.ID {
		t.Errorf("retried step %+v", as)
	}
}

// A runbook whose on: does not list api cannot be started through the API.
func TestOnRefusesAPIRuns(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	res := ts.admin(t, http.MethodPost, "/api/v1/runs", protocol.CreateRunRequest{Project: "on",
		Runbook: "on:\n  push:\nsteps:\n  - name: a\n    command: x\n"})
	wantStatus(t, "push-only runbook through the API", res, http.StatusBadRequest)
	if msg := res.errorMessage(t); !strings.Contains(msg, "does not list api") {
		t.Errorf("error %q", msg)
	}
	res = ts.admin(t, http.MethodPost, "/api/v1/runs", protocol.CreateRunRequest{Project: "on",
		Runbook: "on:\n  api:\nsteps:\n  - name: a\n    command: x\n"})
	wantStatus(t, "api runbook", res, http.StatusCreated)
}

// Approvals take a comment; approvals, rejections, cancels and retries are
// in the run's audit trail.
func TestApprovalCommentsAndAudit(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	res := ts.admin(t, http.MethodPost, "/api/v1/runs", protocol.CreateRunRequest{Project: "audit",
		Runbook: "steps:\n  - name: deploy\n    command: x\n    approval: {required: true}\n  - name: prod\n    command: x\n    approval: {required: true}\n"})
	wantStatus(t, "create", res, http.StatusCreated)
	var run protocol.Run
	res.decode(t, &run)
	wantStatus(t, "approve deploy", ts.admin(t, http.MethodPost, "/api/v1/runs/"+run.ID+"/steps/deploy/approve", protocol.Decision{Comment: "change 42 signed off"}), http.StatusOK)
	res = ts.admin(t, http.MethodPost, "/api/v1/runs/"+run.ID+"/steps/prod/reject", protocol.Decision{Comment: "not on a Friday"})
	wantStatus(t, "reject prod", res, http.StatusOK)
	var after protocol.Run
	res.decode(t, &after)
	for _, st := range after.Steps {
		if st.Name == "prod" && (st.Reason != "rejected" || st.Error != "approval rejected by admin: not on a Friday") {
			t.Errorf("rejected step %+v", st)
		}
	}
	wantStatus(t, "comment too long", ts.admin(t, http.MethodPost, "/api/v1/runs/"+run.ID+"/steps/deploy/approve",
		protocol.Decision{Comment: strings.Repeat("x", 3000)}), http.StatusBadRequest)
	wantStatus(t, "cancel", ts.admin(t, http.MethodPost, "/api/v1/runs/"+run.ID+"/cancel", nil), http.StatusOK)
	res = ts.admin(t, http.MethodGet, "/api/v1/runs/"+run.ID+"/audit", nil)
	wantStatus(t, "audit", res, http.StatusOK)
	var events []protocol.AuditEvent
	res.decode(t, &events)
	var got []string
	for _, e := range events {
		got = append(got, e.Actor+" "+e.Action+" "+e.Step+" "+e.Comment)
	}
	want := "admin approve deploy change 42 signed off|admin reject prod not on a Friday|admin cancel  "
	if strings.Join(got, "|") != want {
		t.Errorf("audit %q, want %q", strings.Join(got, "|"), want)
	}
}

// Every admin change is in the audit log, newest first; reads and refused
// requests are not, and secret values never are.
func TestAuditLogRecordsAdminActions(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	agent := ts.newAgent(t, "audited")
	wantStatus(t, "disable", ts.admin(t, http.MethodPost, "/api/v1/agents/"+agent.ID+"/disable", nil), http.StatusOK)
	wantStatus(t, "secret", ts.admin(t, http.MethodPut, "/api/v1/projects/a/secrets/TOKEN", map[string]string{"value": "very-secret-value"}), http.StatusNoContent)
	wantStatus(t, "refused", ts.admin(t, http.MethodPut, "/api/v1/projects/a/secrets/TOKEN", map[string]string{"value": "x"}), http.StatusBadRequest)
	ts.admin(t, http.MethodGet, "/api/v1/agents", nil)
	res := ts.admin(t, http.MethodGet, "/api/v1/audit", nil)
	wantStatus(t, "audit log", res, http.StatusOK)
	if strings.Contains(string(res.Body), "very-secret-value") {
		t.Fatal("a secret value is in the audit log")
	}
	var events []protocol.AuditEvent
	res.decode(t, &events)
	var got []string
	for _, e := range events {
		got = append(got, e.Action)
	}
	want := "PUT /api/v1/projects/a/secrets/TOKEN|POST /api/v1/agents/" + agent.ID + "/disable"
	if !strings.HasPrefix(strings.Join(got, "|"), want) {
		t.Errorf("audit log %q, want it to start with %q", strings.Join(got, "|"), want)
	}
}

// POST /api/v1/projects creates a project once.
func TestCreateProject(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	res := ts.admin(t, http.MethodPost, "/api/v1/projects", map[string]any{"name": "shop", "max_running": 3,
		"repository": map[string]string{"url": "https://git.example/shop.git", "default_branch": "trunk"}})
	wantStatus(t, "create", res, http.StatusCreated)
	var p protocol.Project
	res.decode(t, &p)
	if p.Name != "shop" || p.MaxRunning != 3 || p.Weight != 1 || p.Repository == nil || p.Repository.DefaultBranch != "trunk" {
		t.Errorf("project %+v", p)
	}
	wantStatus(t, "again", ts.admin(t, http.MethodPost, "/api/v1/projects", map[string]any{"name": "shop"}), http.StatusConflict)
	wantStatus(t, "bad name", ts.admin(t, http.MethodPost, "/api/v1/projects", map[string]any{"name": "../x"}), http.StatusBadRequest)
	wantStatus(t, "get", ts.admin(t, http.MethodGet, "/api/v1/projects/shop", nil), http.StatusOK)
}

// Environments scope secrets: a step with environment: production gets the
// production value of a secret, others the project-wide one.
func TestEnvironmentSecrets(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	agent := ts.newAgent(t, "envs")
	wantStatus(t, "project TOKEN", ts.admin(t, "PUT", "/api/v1/projects/e/secrets/TOKEN", map[string]string{"value": "project-token"}), 204)
	wantStatus(t, "production TOKEN", ts.admin(t, "PUT", "/api/v1/projects/e/environments/production/secrets/TOKEN", map[string]string{"value": "production-token"}), 204)
	wantStatus(t, "production DEPLOY_KEY", ts.admin(t, "PUT", "/api/v1/projects/e/environments/production/secrets/DEPLOY_KEY", map[string]string{"value": "deploy-key-1"}), 204)
	wantStatus(t, "bad environment", ts.admin(t, "PUT", "/api/v1/projects/e/environments/a.b/secrets/X", map[string]string{"value": "xxxxxxxx"}), 400)
	res := ts.admin(t, "GET", "/api/v1/projects/e/environments/production/secrets", nil)
	if !strings.Contains(string(res.Body), `"DEPLOY_KEY","TOKEN"`) {
		t.Errorf("production secrets %s", res.Body)
	}
	if res := ts.admin(t, "GET", "/api/v1/projects/e/secrets", nil); strings.Contains(string(res.Body), "DEPLOY_KEY") {
		t.Errorf("project secrets list an environment's: %s", res.Body)
	}
	bad := ts.admin(t, "POST", "/api/v1/runs", protocol.CreateRunRequest{Project: "e",
		Runbook: "steps:\n  - name: x\n    command: x\n    environment: staging\n    secrets: [DEPLOY_KEY]\n"})
	wantStatus(t, "staging lacks DEPLOY_KEY", bad, http.StatusBadRequest)
	if msg := bad.errorMessage(t); !strings.Contains(msg, "DEPLOY_KEY (environment staging)") {
		t.Errorf("error %q", msg)
	}
	ts.createRun(t, "e", "steps:\n  - name: test\n    command: x\n    secrets: [TOKEN]\n  - name: deploy\n    command: x\n    environment: production\n    secrets: [TOKEN, DEPLOY_KEY]\n")
	got := map[string]map[string]string{}
	for range 2 {
		res := agent.reserve(t, ts, "0s")
		wantStatus(t, "reserve", res, http.StatusOK)
		as := agent.open(t, ts, res)
		got[as.StepName] = as.Secrets
	}
	if got["test"]["TOKEN"] != "project-token" || got["deploy"]["TOKEN"] != "production-token" || got["deploy"]["DEPLOY_KEY"] != "deploy-key-1" {
		t.Errorf("secrets %v", got)
	}
}

// A step's resources reach the agent in its assignment.
func TestResourcesInAssignment(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	agent := ts.newAgent(t, "res")
	ts.createRun(t, "res", "global:\n  resources: {cpus: 2}\nsteps:\n  - name: a\n    command: x\n    resources: {memory: 512Mi}\n")
	as := agent.reserveStep(t, ts, "a")
	if as.Memory != 512<<20 || as.NanoCPUs != 2e9 {
		t.Errorf("assignment memory %d cpus %d", as.Memory, as.NanoCPUs)
	}
}
