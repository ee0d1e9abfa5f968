package e2e

import (
	"fmt"
	"testing"
	"time"
)

// A step that fails twice and then succeeds is retried with its attempts
// recorded; a step past its timeout is killed and fails with reason timeout.
func TestRetryAndTimeout(t *testing.T) {
	t.Parallel()
	s := startServer(t, freeAddr(t), t.TempDir())
	token := s.registrationToken(t)
	startAgent(t, s, token, t.TempDir(), "one")
	startAgent(t, s, token, t.TempDir(), "two")
	waitAgents(t, s, 2)
	run := s.submit(t, "e2e", `
steps:
  - name: flaky
    command: echo "attempt $BATON_STEP_ATTEMPT"; [ "$BATON_STEP_ATTEMPT" -ge 3 ]
    retry:
      max: 3
      delay: 1s
  - name: slow
    command: sleep 30
    timeout: 2s
  - name: after-slow
    command: echo never
    depends_on: [slow]
`)
	run = s.waitRun(t, run.ID, 60*time.Second)
	if run.State != "failed" {
		t.Fatalf("run %s, want failed: %+v", run.State, run.Steps)
	}

	flaky := run.step(t, "flaky")
	if flaky.State != "succeeded" || flaky.Attempt != 3 || len(flaky.Attempts) != 3 {
		t.Fatalf("flaky: %+v, want succeeded at attempt 3 with 3 attempts", flaky)
	}
	for i, a := range flaky.Attempts {
		wantState, wantReason := "failed", "exit_code"
		if i == 2 {
			wantState, wantReason = "succeeded", ""
		}
		if a.Attempt != i+1 || a.State != wantState || a.Reason != wantReason || a.ExitCode == nil || a.FinishedAt == nil {
			t.Errorf("attempt %d: %+v, want %s (%s)", i+1, a, wantState, wantReason)
		}
		if i > 0 {
			if gap := a.StartedAt.Sub(*flaky.Attempts[i-1].FinishedAt); gap < time.Second {
				t.Errorf("attempt %d started %s after the previous one ended; retry.delay is 1s", i+1, gap)
			}
		}
		log := s.attemptLog(t, run.ID, "flaky", i+1)
		if want := fmt.Sprintf("attempt %d\n", i+1); log != want {
			t.Errorf("log of attempt %d = %q, want %q", i+1, log, want)
		}
	}

	slow := run.step(t, "slow")
	if slow.State != "failed" || slow.Reason != "timeout" || slow.ExitCode != nil {
		t.Errorf("slow: %+v, want failed with reason timeout", slow)
	}
	if took := slow.FinishedAt.Sub(*slow.StartedAt); took < 2*time.Second || took > 10*time.Second {
		t.Errorf("slow ran %s; its timeout is 2s", took)
	}
	if st := run.step(t, "after-slow"); st.State != "skipped" {
		t.Errorf("after-slow: %+v, want skipped", st)
	}
}
