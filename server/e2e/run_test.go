package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// diamond is a -> (b, c) -> d. b and c sleep so that, with two agents, they
// overlap and d must wait for the slower one.
func diamond(bCommand string) string {
	return `name: diamond
global:
  env:
    GREETING: hello
steps:
  - name: a
    command: echo "$GREETING from a"
  - name: b
    command: ` + bCommand + `
    depends_on: [a]
  - name: c
    command: sleep 1; echo "c done"
    depends_on: [a]
  - name: d
    command: echo "d after b and c"
    depends_on:
      - b
      - c
`
}

// fleet starts a server and two agents.
func fleet(t *testing.T) *server {
	t.Helper()
	s := startServer(t, freeAddr(t), t.TempDir())
	token := s.registrationToken(t)
	startAgent(t, s, token, t.TempDir(), "one")
	startAgent(t, s, token, t.TempDir(), "two")
	waitAgents(t, s, 2)
	return s
}

func TestDiamondSucceeds(t *testing.T) {
	t.Parallel()
	s := fleet(t)
	run := s.submit(t, "e2e", diamond(`sleep 1; echo "b done"`))
	run = s.waitRun(t, run.ID, 60*time.Second)
	if run.State != "succeeded" {
		t.Fatalf("run %s, want succeeded: %+v", run.State, run.Steps)
	}
	for _, name := range []string{"a", "b", "c", "d"} {
		st := run.step(t, name)
		if st.State != "succeeded" || st.ExitCode == nil || *st.ExitCode != 0 || st.StartedAt == nil || st.FinishedAt == nil || st.AgentID == "" {
			t.Errorf("step %s: %+v", name, st)
		}
	}
	a, b, c, d := run.step(t, "a"), run.step(t, "b"), run.step(t, "c"), run.step(t, "d")
	for _, dep := range []stepView{b, c} {
		if dep.StartedAt.Before(*a.FinishedAt) {
			t.Errorf("%s started at %s, before a finished at %s", dep.Name, dep.StartedAt, a.FinishedAt)
		}
		if d.StartedAt.Before(*dep.FinishedAt) {
			t.Errorf("d started at %s, before %s finished at %s", d.StartedAt, dep.Name, dep.FinishedAt)
		}
	}
	// Two agents: the middle of the diamond ran in parallel.
	if !b.StartedAt.Before(*c.FinishedAt) || !c.StartedAt.Before(*b.FinishedAt) {
		t.Errorf("b (%s-%s) and c (%s-%s) did not overlap", b.StartedAt, b.FinishedAt, c.StartedAt, c.FinishedAt)
	}
	for name, want := range map[string]string{"a": "hello from a\n", "b": "b done\n", "c": "c done\n", "d": "d after b and c\n"} {
		if got := s.stepLog(t, run.ID, name); got != want {
			t.Errorf("log of %s = %q, want %q", name, got, want)
		}
	}
}

func TestDiamondFailureSkipsDependents(t *testing.T) {
	t.Parallel()
	s := fleet(t)
	run := s.submit(t, "e2e", diamond(`echo "b fails" >&2; exit 3`))
	run = s.waitRun(t, run.ID, 60*time.Second)
	if run.State != "failed" {
		t.Fatalf("run %s, want failed: %+v", run.State, run.Steps)
	}
	b, c, d := run.step(t, "b"), run.step(t, "c"), run.step(t, "d")
	if b.State != "failed" || b.ExitCode == nil || *b.ExitCode != 3 {
		t.Errorf("b: %+v, want failed with exit code 3", b)
	}
	if c.State != "succeeded" {
		t.Errorf("c: %+v, want succeeded (independent branch keeps running)", c)
	}
	if d.State != "skipped" || d.StartedAt != nil || d.AgentID != "" {
		t.Errorf("d: %+v, want skipped and never started", d)
	}
	if got := s.stepLog(t, run.ID, "b"); got != "b fails\n" {
		t.Errorf("log of b = %q", got)
	}
}

func TestInvalidRunbooksRejected(t *testing.T) {
	t.Parallel()
	s := startServer(t, freeAddr(t), t.TempDir())
	cases := []struct {
		name, runbook string
		want          []string
	}{
		{"cycle", "steps:\n  - name: a\n    command: 'true'\n    depends_on: [b]\n  - name: b\n    command: 'true'\n    depends_on: [a]\n",
			[]string{"a -> b -> a", "runbook.yml:2:"}},
		{"missing dependency", "steps:\n  - name: a\n    command: 'true'\n  - name: b\n    command: 'true'\n    depends_on: [nope]\n",
			[]string{`step "b" depends on unknown step "nope"`, "runbook.yml:4:"}},
	}
	for _, tc := range cases {
		var body struct {
			Error   string   `json:"error"`
			Details []string `json:"details"`
		}
		code := s.do(t, "POST", "/api/v1/runs?project=e2e", "application/yaml", []byte(tc.runbook), &body)
		if code != 400 || len(body.Details) != 1 {
			t.Errorf("%s: status %d, want 400 with one detail: %+v", tc.name, code, body)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(body.Details[0], w) || !strings.Contains(body.Error, w) {
				t.Errorf("%s: answer %+v does not contain %q", tc.name, body, w)
			}
		}
	}
}

func TestRestartsKeepIdentityAndState(t *testing.T) {
	t.Parallel()
	addr, dataDir, agentDir := freeAddr(t), t.TempDir(), t.TempDir()
	s := startServer(t, addr, dataDir)
	token := s.registrationToken(t)
	health := freeAddr(t)
	agent := startAgent(t, s, token, agentDir, "keeper", "--health-addr", health)
	first := waitAgents(t, s, 1)[0]
	waitFor(t, 10*time.Second, "agent /readyz", func() bool {
		resp, err := http.Get("http://" + health + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	run := s.submit(t, "e2e", "steps:\n  - name: only\n    command: echo first\n")
	if got := s.waitRun(t, run.ID, 60*time.Second); got.State != "succeeded" {
		t.Fatalf("first run: %+v", got)
	}

	// The agent restarts with the same state dir: same identity, no new agent.
	agent.stop()
	agent = startAgent(t, s, token, agentDir, "keeper")
	waitFor(t, 30*time.Second, "agent to re-register", func() bool {
		return strings.Contains(agent.output(), "msg=registered")
	})
	if agents := s.agents(t); len(agents) != 1 || agents[0].ID != first.ID {
		t.Fatalf("after agent restart: %+v, want only %s", agents, first.ID)
	}

	// The server restarts on the same data dir: runs and agents are kept,
	// and the running agent reconnects and takes new work.
	s.stop()
	s = startServer(t, addr, dataDir)
	if got := s.waitRun(t, run.ID, time.Second); got.State != "succeeded" || got.step(t, "only").AgentID != first.ID {
		t.Fatalf("run after server restart: %+v", got)
	}
	if got := s.stepLog(t, run.ID, "only"); got != "first\n" {
		t.Fatalf("log after server restart: %q", got)
	}
	if agents := s.agents(t); len(agents) != 1 || agents[0].ID != first.ID {
		t.Fatalf("agents after server restart: %+v", agents)
	}
	second := s.submit(t, "e2e", "steps:\n  - name: again\n    command: echo second\n")
	if got := s.waitRun(t, second.ID, 60*time.Second); got.State != "succeeded" || got.step(t, "again").AgentID != first.ID {
		t.Fatalf("run after server restart: %+v", got)
	}
}
