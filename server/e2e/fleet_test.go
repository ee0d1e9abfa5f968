package e2e

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// An admin disables an agent while it runs a step: the step finishes, the
// agent takes nothing while disabled and resumes when enabled. Deleting it
// makes it cancel nothing (idle), wipe its state dir and exit 0; its old
// keys cannot register again.
func TestFleetControl(t *testing.T) {
	t.Parallel()
	s := startServer(t, freeAddr(t), t.TempDir(), "--agent-ping-interval", "200ms")
	token := s.registrationToken(t)
	stateDir := t.TempDir()
	agent := startAgent(t, s, token, stateDir, "ctl")
	id := waitAgents(t, s, 1)[0].ID
	waitFor(t, 10*time.Second, "control channel connected", func() bool {
		var a struct{ Connected bool }
		s.do(t, "GET", "/api/v1/agents/"+id, "", nil, &a)
		return a.Connected
	})

	first := s.submit(t, "fleet", "steps:\n  - name: slow\n    command: sleep 2; echo finished\n")
	waitFor(t, 20*time.Second, "slow to start", func() bool {
		var r runView
		s.do(t, "GET", "/api/v1/runs/"+first.ID, "", nil, &r)
		return r.step(t, "slow").State == "running"
	})
	var held struct {
		Running []struct{ Step string }
	}
	s.do(t, "GET", "/api/v1/agents/"+id, "", nil, &held)
	if len(held.Running) != 1 || held.Running[0].Step != "slow" {
		t.Errorf("the agent view lists running %+v, want slow", held.Running)
	}
	if code := s.do(t, "POST", "/api/v1/agents/"+id+"/disable", "", nil, nil); code != 200 {
		t.Fatalf("disable: %d", code)
	}
	if r := s.waitRun(t, first.ID, 30*time.Second); r.State != "succeeded" {
		t.Fatalf("the step running at disable: %+v", r.Steps)
	}
	second := s.submit(t, "fleet", "steps:\n  - name: later\n    command: echo later\n")
	// Nothing is reserved while disabled: the step stays ready well past a
	// reservation's usual few milliseconds.
	deadline := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(deadline) {
		var r runView
		s.do(t, "GET", "/api/v1/runs/"+second.ID, "", nil, &r)
		if st := r.step(t, "later").State; st != "ready" {
			t.Fatalf("while disabled, the step became %s", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	enabled := time.Now()
	if code := s.do(t, "POST", "/api/v1/agents/"+id+"/enable", "", nil, nil); code != 200 {
		t.Fatalf("enable: %d", code)
	}
	var reservedAfter time.Duration
	waitFor(t, 10*time.Second, "later to be reserved", func() bool {
		var r runView
		s.do(t, "GET", "/api/v1/runs/"+second.ID, "", nil, &r)
		if st := r.step(t, "later"); st.StartedAt != nil {
			reservedAfter = st.StartedAt.Sub(enabled)
			return true
		}
		return false
	})
	t.Logf("reserved %s after enable", reservedAfter)
	if reservedAfter > 2*time.Second {
		t.Errorf("reserved %s after enable; want within about a second", reservedAfter)
	}
	s.waitRun(t, second.ID, 30*time.Second)

	identity, err := os.ReadFile(filepath.Join(stateDir, "identity.json"))
	if err != nil {
		t.Fatal(err)
	}
	if code := s.do(t, "DELETE", "/api/v1/agents/"+id, "", nil, nil); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	select {
	case <-agent.done:
		if agent.err != nil {
			t.Errorf("deleted agent exited with %v, want 0", agent.err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("deleted agent did not exit")
	}
	if _, err := os.Stat(stateDir); !os.IsNotExist(err) {
		t.Errorf("state dir still there after delete: %v", err)
	}
	// The old identity cannot come back.
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stateDir, "identity.json"), identity, 0o600); err != nil {
		t.Fatal(err)
	}
	again := startAgent(t, s, token, stateDir, "ctl-again")
	waitFor(t, 15*time.Second, "registration refused", func() bool {
		return strings.Contains(again.output(), "was deleted")
	})
}

// When pings stop (the path to the server blackholes), the agent goes Idle
// and /readyz fails; when traffic flows again it is Ready and takes work.
func TestAgentIdlesWhenServerUnreachable(t *testing.T) {
	t.Parallel()
	s := startServer(t, freeAddr(t), t.TempDir(), "--agent-ping-interval", "200ms")
	p := startProxy(t, s.addr)
	token := s.registrationToken(t)
	health := freeAddr(t)
	agent := start(t, "agent-far", []string{"baton-agent", "--server", "http://" + p.addr(), "--state-dir", t.TempDir(),
		"--name", "far", "--default-image", stepImage, "--health-addr", health}, "BATON_REGISTRATION_TOKEN="+token)
	ready := func() bool {
		resp, err := http.Get("http://" + health + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}
	waitFor(t, 20*time.Second, "agent ready", ready)

	p.blackhole.Store(true)
	waitFor(t, 30*time.Second, "agent idle", func() bool {
		return strings.Contains(agent.output(), "to=idle") && !ready()
	})

	p.blackhole.Store(false)
	waitFor(t, 30*time.Second, "agent ready again", ready)
	run := s.submit(t, "far", "steps:\n  - name: after\n    command: echo back\n")
	got := s.waitRun(t, run.ID, 60*time.Second)
	if got.State != "succeeded" || got.step(t, "after").Attempt != 1 {
		t.Fatalf("run after recovery: %+v", got)
	}
}

// An agent started while its server is down registers soon after the server
// comes up; an agent with an invalid token says so and does not spin.
func TestRegistrationRetries(t *testing.T) {
	t.Parallel()
	addr, dataDir := freeAddr(t), t.TempDir()
	s := startServer(t, addr, dataDir)
	token := s.registrationToken(t)
	s.stop()
	early := start(t, "agent-early", []string{"baton-agent", "--server", "http://" + addr, "--state-dir", t.TempDir(),
		"--name", "early", "--default-image", stepImage}, "BATON_REGISTRATION_TOKEN="+token)
	waitFor(t, 10*time.Second, "the agent to find no server", func() bool {
		return strings.Count(early.output(), "server not reachable") >= 3
	})
	s = startServer(t, addr, dataDir)
	up := time.Now()
	waitAgents(t, s, 1)
	took := time.Since(up)
	t.Logf("registered %s after the server came up", took.Round(time.Millisecond))
	if took > 10*time.Second {
		t.Errorf("registered %s after the server came up; the backoff is capped well below that at this point", took)
	}

	bad := start(t, "agent-bad", []string{"baton-agent", "--server", s.url, "--state-dir", t.TempDir(),
		"--name", "bad", "--default-image", stepImage}, "BATON_REGISTRATION_TOKEN=brt_not-a-token")
	waitFor(t, 10*time.Second, "the bad token to be reported", func() bool {
		return strings.Contains(bad.output(), "registration refused by the server; check the registration token")
	})
	// Refusals back off for seconds (5 s at first), not a busy loop.
	time.Sleep(2 * time.Second)
	if n := strings.Count(bad.output(), "registration refused"); n != 1 {
		t.Errorf("%d refused registrations in 2 s: the agent retries too eagerly", n)
	}
	select {
	case <-bad.done:
		t.Fatalf("the agent with a bad token exited: %v", bad.err)
	default:
	}
	if agents := s.agents(t); len(agents) != 1 {
		t.Fatalf("agents %+v: the bad token registered one", agents)
	}
}

// An agent killed mid-step leaves its container; restarted, it removes it.
func TestRestartReapsOrphanedContainers(t *testing.T) {
	t.Parallel()
	s := startServer(t, freeAddr(t), t.TempDir())
	token := s.registrationToken(t)
	stateDir := t.TempDir()
	agent := startAgent(t, s, token, stateDir, "reaper")
	id := waitAgents(t, s, 1)[0].ID
	s.submit(t, "reap", "steps:\n  - name: long\n    command: sleep 120\n")
	label := "label=dev.baton.agent=" + id
	containers := func() string {
		out, err := exec.Command("docker", "ps", "-aq", "--filter", label).Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}
	waitFor(t, 30*time.Second, "the step's container", func() bool { return containers() != "" })
	agent.cmd.Process.Kill() // SIGKILL: no drain, no cleanup
	<-agent.done
	if containers() == "" {
		t.Fatal("the container went away with the agent; nothing to reap")
	}
	killed := time.Now()
	startAgent(t, s, token, stateDir, "reaper")
	waitFor(t, 30*time.Second, "the orphan to be reaped", func() bool { return containers() == "" })
	t.Logf("orphan removed %s after the restart", time.Since(killed).Round(time.Millisecond))
}
