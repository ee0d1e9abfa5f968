package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// getRun reads a run once.
func (s *server) getRun(t *testing.T, id string) runView {
	t.Helper()
	var r runView
	if code := s.do(t, "GET", "/api/v1/runs/"+id, "", nil, &r); code != 200 {
		t.Fatalf("get run %s: %d", id, code)
	}
	return r
}

// waitStep waits until the run's step is in state.
func (s *server) waitStep(t *testing.T, runID, step, state string, timeout time.Duration) stepView {
	t.Helper()
	var st stepView
	waitFor(t, timeout, step+" "+state, func() bool {
		st = s.getRun(t, runID).step(t, step)
		return st.State == state
	})
	return st
}

// containersWith lists the ids of containers carrying a label (k=v).
func containersWith(t *testing.T, label string) string {
	t.Helper()
	out, err := exec.Command("docker", "ps", "-aq", "--filter", "label="+label).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// removeContainersOf removes, when the test ends, what an agent that will
// not come back (killed, or deleted) left running.
func removeContainersOf(t *testing.T, agentID string) {
	t.Cleanup(func() {
		if ids := containersWith(t, "dev.baton.agent="+agentID); ids != "" {
			exec.Command("docker", append([]string{"rm", "-f"}, strings.Fields(ids)...)...).Run()
		}
	})
}

// Cancelling a run stops its running step's container within the stop
// grace period, cancels what has not started, and still runs cleanup.
func TestCancelRunStopsStepAndRunsCleanup(t *testing.T) {
	t.Parallel()
	s := startServer(t, freeAddr(t), t.TempDir(), "--agent-ping-interval", "500ms")
	token := s.registrationToken(t)
	startAgent(t, s, token, t.TempDir(), "canceller")
	waitAgents(t, s, 1)
	run := s.submit(t, "cancel", `steps:
  - name: long
    command: trap 'echo got TERM; exit 143' TERM; echo started; sleep 300 & wait
  - name: after
    depends_on: long
    command: echo never
  - name: cleanup
    depends_on: [long, after]
    cleanup: true
    command: echo cleaning up
`)
	s.waitStep(t, run.ID, "long", "running", 30*time.Second)
	label := "dev.baton.run=" + run.ID
	waitFor(t, 20*time.Second, "the step to print", func() bool {
		var log string
		s.do(t, "GET", "/api/v1/runs/"+run.ID+"/steps/long/log", "", nil, &log)
		return strings.Contains(log, "started")
	})

	var view runView
	if code := s.do(t, "POST", "/api/v1/runs/"+run.ID+"/cancel", "", nil, &view); code != 200 {
		t.Fatalf("cancel: %d %+v", code, view)
	}
	cancelled := time.Now()
	if st := view.step(t, "after").State; st != "cancelled" {
		t.Errorf("after cancel, the unstarted step is %s, want cancelled", st)
	}
	// The stop grace period is 10 s; the container must be gone within it
	// plus 5 s (the step traps TERM and exits at once).
	waitFor(t, 15*time.Second, "the cancelled step's container to go", func() bool {
		return !strings.Contains(containersWith(t, label), "\n") && s.getRun(t, run.ID).step(t, "long").State == "cancelled"
	})
	t.Logf("step cancelled %s after the request", time.Since(cancelled).Round(time.Millisecond))
	got := s.waitRun(t, run.ID, 30*time.Second)
	if got.State != "cancelled" {
		t.Fatalf("run ended %s, want cancelled: %+v", got.State, got.Steps)
	}
	long, after, cleanup := got.step(t, "long"), got.step(t, "after"), got.step(t, "cleanup")
	if long.State != "cancelled" || long.Reason != "cancelled" || after.State != "cancelled" || cleanup.State != "succeeded" {
		t.Errorf("long %s/%s, after %s, cleanup %s; want cancelled, cancelled, succeeded", long.State, long.Reason, after.State, cleanup.State)
	}
	if log := s.stepLog(t, run.ID, "long"); !strings.Contains(log, "started") || !strings.Contains(log, "got TERM") {
		t.Errorf("long's log %q: want the step to have seen SIGTERM", log)
	}
	if log := s.stepLog(t, run.ID, "cleanup"); !strings.Contains(log, "cleaning up") {
		t.Errorf("cleanup log %q", log)
	}
	if ids := containersWith(t, label); ids != "" {
		t.Errorf("containers left after the run: %s", ids)
	}
	if code := s.do(t, "POST", "/api/v1/runs/"+run.ID+"/cancel", "", nil, nil); code != 409 {
		t.Errorf("cancelling an ended run: %d, want 409", code)
	}
}

// An admin changes an agent's pool size; the agent hears of it over its
// control channel and runs that many steps at once.
func TestAgentConfigIsPushed(t *testing.T) {
	t.Parallel()
	s := startServer(t, freeAddr(t), t.TempDir(), "--agent-ping-interval", "500ms")
	token := s.registrationToken(t)
	startAgent(t, s, token, t.TempDir(), "pool")
	id := waitAgents(t, s, 1)[0].ID
	waitFor(t, 10*time.Second, "control channel connected", func() bool {
		var a struct{ Connected bool }
		s.do(t, "GET", "/api/v1/agents/"+id, "", nil, &a)
		return a.Connected
	})
	var view struct {
		Config struct {
			PoolSize    int   `json:"pool_size"`
			LeaseLength int64 `json:"lease_length"`
		} `json:"config"`
		Settings struct {
			PoolSize int `json:"pool_size"`
		} `json:"settings"`
	}
	if code := s.do(t, "PUT", "/api/v1/agents/"+id+"/config", "application/json", []byte(`{"pool_size": 3}`), &view); code != 200 {
		t.Fatalf("set config: %d", code)
	}
	if view.Config.PoolSize != 3 || view.Settings.PoolSize != 3 || view.Config.LeaseLength == 0 {
		t.Errorf("agent view after the change: %+v", view)
	}
	if code := s.do(t, "PUT", "/api/v1/agents/"+id+"/config", "application/json", []byte(`{"pool_size": 1000}`), nil); code != 400 {
		t.Errorf("pool size 1000: %d, want 400", code)
	}
	var steps strings.Builder
	steps.WriteString("steps:\n")
	for i := range 3 {
		fmt.Fprintf(&steps, "  - name: s%d\n    command: sleep 3\n", i)
	}
	run := s.submit(t, "pool", steps.String())
	waitFor(t, 30*time.Second, "three steps running at once", func() bool {
		n := 0
		for _, st := range s.getRun(t, run.ID).Steps {
			if st.State == "running" {
				n++
			}
		}
		return n == 3
	})
	if got := s.waitRun(t, run.ID, 30*time.Second); got.State != "succeeded" {
		t.Fatalf("run: %+v", got.Steps)
	}
}

// attemptsOf summarises a step's attempts as "1:failed/agent_lost 2:succeeded".
func attemptsOf(st stepView) string {
	var parts []string
	for _, a := range st.Attempts {
		p := fmt.Sprintf("%d:%s", a.Attempt, a.State)
		if a.Reason != "" {
			p += "/" + a.Reason
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, " ")
}

// retryOnce is a step that hangs on its first attempt and succeeds on the
// next, so a retry shows.
const retryOnce = `steps:
  - name: work
    retry: 1
    command: echo "attempt $BATON_STEP_ATTEMPT"; if [ "$BATON_STEP_ATTEMPT" = 1 ]; then sleep %s; fi
`

// An agent killed mid-step stops renewing its lease: the step leaves
// running within the lease length plus 10 s and is retried on another agent.
func TestKilledAgentStepIsRetried(t *testing.T) {
	t.Parallel()
	const lease = 3 * time.Second
	s := startServer(t, freeAddr(t), t.TempDir(), "--lease-length", lease.String())
	token := s.registrationToken(t)
	doomed := startAgent(t, s, token, t.TempDir(), "doomed")
	doomedID := waitAgents(t, s, 1)[0].ID
	removeContainersOf(t, doomedID)
	run := s.submit(t, "lost", fmt.Sprintf(retryOnce, "120"))
	s.waitStep(t, run.ID, "work", "running", 30*time.Second)
	doomed.cmd.Process.Kill()
	<-doomed.done
	killed := time.Now()

	startAgent(t, s, token, t.TempDir(), "rescuer")
	waitFor(t, lease+10*time.Second, "the lost attempt to end", func() bool {
		st := s.getRun(t, run.ID).step(t, "work")
		return len(st.Attempts) > 0 && st.Attempts[0].FinishedAt != nil
	})
	t.Logf("attempt 1 ended %s after the agent was killed (lease %s)", time.Since(killed).Round(time.Millisecond), lease)
	got := s.waitRun(t, run.ID, 60*time.Second)
	work := got.step(t, "work")
	if got.State != "succeeded" || attemptsOf(work) != "1:failed/agent_lost 2:succeeded" {
		t.Fatalf("run %s, attempts %q; want attempt 1 lost and attempt 2 succeeded", got.State, attemptsOf(work))
	}
	if work.AgentID == doomedID {
		t.Error("attempt 2 ran on the killed agent")
	}
}

// A frozen agent (SIGSTOP) loses its step to another agent; thawed, its
// late calls are refused (409) and change nothing.
func TestZombieAgentReportsAreRefused(t *testing.T) {
	t.Parallel()
	const lease = 2 * time.Second
	s := startServer(t, freeAddr(t), t.TempDir(), "--lease-length", lease.String())
	token := s.registrationToken(t)
	zombie := startAgent(t, s, token, t.TempDir(), "zombie")
	zombieID := waitAgents(t, s, 1)[0].ID
	removeContainersOf(t, zombieID)
	run := s.submit(t, "zombie", fmt.Sprintf(retryOnce, "6"))
	s.waitStep(t, run.ID, "work", "running", 30*time.Second)
	zombie.cmd.Process.Signal(syscall.SIGSTOP)
	startAgent(t, s, token, t.TempDir(), "healthy")
	got := s.waitRun(t, run.ID, 60*time.Second)
	want := "1:failed/agent_lost 2:succeeded"
	if got.State != "succeeded" || attemptsOf(got.step(t, "work")) != want {
		t.Fatalf("run %s, attempts %q; want %q", got.State, attemptsOf(got.step(t, "work")), want)
	}
	zombie.cmd.Process.Signal(syscall.SIGCONT)
	// Thawed, the zombie renews its lease and is told it is gone (409): it
	// stops the step, and its report is refused too.
	waitFor(t, 30*time.Second, "the zombie's result to be refused", func() bool {
		return strings.Contains(zombie.output(), "step result refused")
	})
	if out := zombie.output(); !strings.Contains(out, "lease lost") || !strings.Contains(out, "409 Conflict") {
		t.Errorf("the zombie did not log a lost lease and a 409")
	}
	after := s.getRun(t, run.ID)
	if after.State != "succeeded" || attemptsOf(after.step(t, "work")) != want {
		t.Fatalf("after the zombie woke: run %s, attempts %q", after.State, attemptsOf(after.step(t, "work")))
	}
}

// While the path to the server blackholes mid-step, the agent goes Idle;
// the step finishes meanwhile and its result lands once traffic flows
// again. No step runs twice: every step has exactly one attempt.
func TestBlackholeMidStepRunsNothingTwice(t *testing.T) {
	t.Parallel()
	s := startServer(t, freeAddr(t), t.TempDir(), "--agent-ping-interval", "200ms", "--lease-length", "45s")
	p := startProxy(t, s.addr)
	token := s.registrationToken(t)
	agent := start(t, "agent-flaky", []string{"baton-agent", "--server", "http://" + p.addr(), "--state-dir", t.TempDir(),
		"--name", "flaky", "--default-image", stepImage}, "BATON_REGISTRATION_TOKEN="+token)
	waitAgents(t, s, 1)
	run := s.submit(t, "flaky", `steps:
  - name: first
    command: echo first ran
  - name: through
    depends_on: first
    command: echo through ran; sleep 3; echo through done
  - name: last
    depends_on: through
    command: echo last ran
`)
	s.waitStep(t, run.ID, "through", "running", 30*time.Second)
	p.blackhole.Store(true)
	waitFor(t, 30*time.Second, "agent idle", func() bool { return strings.Contains(agent.output(), "to=idle") })
	// The step ends (its container goes) while the server cannot hear.
	waitFor(t, 30*time.Second, "the step's container to end", func() bool {
		return containersWith(t, "dev.baton.run="+run.ID) == ""
	})
	if st := s.getRun(t, run.ID).step(t, "through").State; st != "running" {
		t.Fatalf("through is %s during the blackhole, want still running (its result cannot arrive)", st)
	}
	p.blackhole.Store(false)
	got := s.waitRun(t, run.ID, 90*time.Second)
	if got.State != "succeeded" {
		t.Fatalf("run %s: %+v", got.State, got.Steps)
	}
	for _, st := range got.Steps {
		if len(st.Attempts) != 1 {
			t.Errorf("step %s ran %d times: %s", st.Name, len(st.Attempts), attemptsOf(st))
		}
		if log := s.stepLog(t, run.ID, st.Name); strings.Count(log, st.Name+" ran") != 1 {
			t.Errorf("step %s log %q", st.Name, log)
		}
	}
}
