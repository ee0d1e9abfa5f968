package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// The server is killed (SIGKILL) with 20 steps running and started again:
// every run completes, and no step's result is lost or recorded twice
// (each step ends after exactly one attempt).
func TestServerKilledWithStepsRunning(t *testing.T) {
	t.Parallel()
	addr, dataDir := freeAddr(t), t.TempDir()
	args := []string{"--agent-pool-size", "10", "--lease-length", "30s"}
	s := startServer(t, addr, dataDir, args...)
	token := s.registrationToken(t)
	for i := range 2 {
		startAgent(t, s, token, t.TempDir(), fmt.Sprintf("busy%d", i))
	}
	waitAgents(t, s, 2)
	var runs []runView
	for r := range 4 {
		var rb strings.Builder
		rb.WriteString("steps:\n")
		for i := range 5 {
			fmt.Fprintf(&rb, "  - name: s%d\n    command: echo run %d step %d; sleep 4; echo done\n", i, r, i)
		}
		rb.WriteString("  - name: after\n    depends_on: [s0, s1, s2, s3, s4]\n    command: echo after\n")
		runs = append(runs, s.submit(t, "restart", rb.String()))
	}
	waitFor(t, 60*time.Second, "20 steps running", func() bool {
		n := 0
		for _, r := range runs {
			for _, st := range s.getRun(t, r.ID).Steps {
				if st.State == "running" {
					n++
				}
			}
		}
		return n == 20
	})
	s.cmd.Process.Kill()
	<-s.done
	time.Sleep(time.Second) // an outage, not a wait: the agents' steps go on without a server
	s = startServer(t, addr, dataDir, args...)
	for _, r := range runs {
		got := s.waitRun(t, r.ID, 90*time.Second)
		if got.State != "succeeded" {
			t.Errorf("run %s ended %s", r.ID, got.State)
		}
		for _, st := range got.Steps {
			if len(st.Attempts) != 1 {
				t.Errorf("run %s step %s: %d attempts (%s)", r.ID, st.Name, len(st.Attempts), attemptsOf(st))
			}
			if st.Name != "after" {
				if log := s.stepLog(t, r.ID, st.Name); strings.Count(log, "done\n") != 1 {
					t.Errorf("run %s step %s log %q", r.ID, st.Name, log)
				}
			}
		}
	}
}
