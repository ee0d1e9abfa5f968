package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// An agent started with --h2c works through the real server over HTTP/2
// without TLS: it runs a run, and a fleet command reaches it on its
// control stream.
func TestH2CAgent(t *testing.T) {
	t.Parallel()
	s := startServer(t, freeAddr(t), t.TempDir())
	token := s.registrationToken(t)
	agent := startAgent(t, s, token, t.TempDir(), "h2c", "--executor", "shell", "--h2c", "--labels", "fast")
	waitAgents(t, s, 1)
	if !strings.Contains(agent.output(), "h2c=true") {
		t.Errorf("the agent's config line does not show h2c=true:\n%s", tail(agent.output()))
	}
	run := s.submit(t, "h2c", "steps:\n  - name: a\n    command: echo one\n  - name: b\n    command: echo two\n    depends_on: [a]\n")
	got := s.waitRun(t, run.ID, 60*time.Second)
	if got.State != "succeeded" {
		t.Fatalf("run %s: %+v", got.State, got.Steps)
	}
	if log := s.stepLog(t, run.ID, "b"); !strings.Contains(log, "two") {
		t.Errorf("log of b %q", log)
	}
	var res struct{ Agents []string }
	if code := s.do(t, http.MethodPost, "/api/v1/fleet/disable", "application/json", []byte(`{"labels":["fast"]}`), &res); code != http.StatusOK || len(res.Agents) != 1 {
		t.Fatalf("fleet disable: %d %+v", code, res)
	}
	waitFor(t, 10*time.Second, "the agent to hear the disable hint", func() bool {
		return strings.Contains(agent.output(), `event=disable`)
	})
}
