package e2e

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"
)

// A step starts a follow-up run with cacher trigger; the new run records
// the step that caused it.
func TestCacherTriggerStartsFollowUpRun(t *testing.T) {
	t.Parallel()
	s := startServer(t, freeAddr(t), t.TempDir())
	token := s.registrationToken(t)
	startAgent(t, s, token, t.TempDir(), "trigger")
	waitAgents(t, s, 1)
	body, _ := json.Marshal(map[string]any{
		"project": "chain",
		"runbook": "steps:\n  - name: kick\n    command: cacher trigger deploy.yml target=prod\n",
		"files": map[string]string{"deploy.yml": "params:\n  target: {type: string, required: true}\n" +
			"steps:\n  - name: deploy\n    command: echo deploying to ${{ params.target }}\n"},
	})
	var parent runView
	if code := s.do(t, "POST", "/api/v1/runs", "application/json", body, &parent); code != 201 {
		t.Fatalf("create run: %d", code)
	}
	got := s.waitRun(t, parent.ID, 60*time.Second)
	log := s.stepLog(t, parent.ID, "kick")
	m := regexp.MustCompile(`cacher: started run ([0-9a-f-]{36})`).FindStringSubmatch(log)
	if got.State != "succeeded" || m == nil {
		t.Fatalf("parent %s, log %q", got.State, log)
	}
	child := s.waitRun(t, m[1], 60*time.Second)
	var view struct {
		Trigger  string `json:"trigger"`
		CausedBy string `json:"caused_by"`
	}
	s.do(t, "GET", "/api/v1/runs/"+m[1], "", nil, &view)
	if child.State != "succeeded" || !strings.Contains(s.stepLog(t, m[1], "deploy"), "deploying to prod") ||
		view.CausedBy != parent.ID+"/kick" || view.Trigger != "step" {
		t.Errorf("child %s caused_by %q log %q", child.State, view.CausedBy, s.stepLog(t, m[1], "deploy"))
	}
}
