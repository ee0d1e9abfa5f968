package e2e

import (
	"testing"
	"time"
)

// A run waiting for approval survives a server restart; approved it goes
// on and succeeds, rejected it fails.
func TestApprovalSurvivesRestart(t *testing.T) {
	t.Parallel()
	addr, dataDir := freeAddr(t), t.TempDir()
	s := startServer(t, addr, dataDir)
	token := s.registrationToken(t)
	startAgent(t, s, token, t.TempDir(), "approver")
	waitAgents(t, s, 1)
	rb := "steps:\n  - name: build\n    command: echo built\n  - name: deploy\n    depends_on: build\n    approval: {required: true, message: \"ship it\"}\n    command: echo shipped\n"
	ok, no := s.submit(t, "gate", rb), s.submit(t, "gate", rb)
	for _, r := range []runView{ok, no} {
		waitFor(t, 60*time.Second, "run "+r.ID+" waiting", func() bool { return s.getRun(t, r.ID).State == "waiting" })
	}
	s.stop()
	s = startServer(t, addr, dataDir)
	if st := s.getRun(t, ok.ID).State; st != "waiting" {
		t.Fatalf("after the restart the run is %s, want waiting", st)
	}
	if code := s.do(t, "POST", "/api/v1/runs/"+ok.ID+"/steps/deploy/approve", "application/json", []byte(`{"comment":"go"}`), nil); code != 200 {
		t.Fatalf("approve: %d", code)
	}
	if code := s.do(t, "POST", "/api/v1/runs/"+no.ID+"/steps/deploy/reject", "application/json", []byte(`{"comment":"no"}`), nil); code != 200 {
		t.Fatalf("reject: %d", code)
	}
	if got := s.waitRun(t, ok.ID, 60*time.Second); got.State != "succeeded" || s.stepLog(t, ok.ID, "deploy") != "shipped\n" {
		t.Errorf("approved run %s", got.State)
	}
	if got := s.waitRun(t, no.ID, 60*time.Second); got.State != "failed" || got.step(t, "deploy").Reason != "rejected" {
		t.Errorf("rejected run %s %+v", got.State, got.step(t, "deploy"))
	}
}
