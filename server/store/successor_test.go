package store_test

import (
	"testing"
	"time"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/server/store"
)

// A completion hands its agent the step it made Ready when the queue has
// nothing to put first: the run continues on that agent even though an
// older run of the project has a step Ready at the same priority. A step
// of higher priority in the project, or a step of another project, sends
// the choice through the fair pick instead.
func TestCompletionContinuesItsRunUnlessTheQueuePutsAnotherFirst(t *testing.T) {
	for _, c := range []struct {
		name  string
		other *server.Run // submitted before the completion
		want  string      // the step handed with the result
	}{
		{name: "nothing else waits", want: "c2"},
		{name: "higher priority in the project", want: "urgent",
			other: &server.Run{Project: "p", Runbook: "x", Steps: []*server.Step{{Name: "urgent", Command: "x", Priority: 5}}}},
		{name: "another project waits", want: "theirs",
			other: &server.Run{Project: "q", Runbook: "x", Steps: []*server.Step{{Name: "theirs", Command: "x"}}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			eachDialect(t, func(t *testing.T, s *store.DB) {
				ctx := t.Context()
				older := createRun(t, s, &server.Run{Project: "p", Runbook: "x", Steps: []*server.Step{
					{Name: "w0", Command: "x"}, {Name: "w1", Command: "x", DependsOn: []string{"w0"}},
				}})
				mine := createRun(t, s, &server.Run{Project: "p", Runbook: "x", Steps: []*server.Step{
					{Name: "c1", Command: "x"}, {Name: "c2", Command: "x", DependsOn: []string{"c1"}},
				}})
				w0 := reserve(t, s, "x", "w0")
				c1 := reserve(t, s, "z", "c1")
				complete(t, s, w0, 0, 1) // w1, of the older run, is Ready now
				if c.other != nil {
					createRun(t, s, c.other)
				}
				zero := 0
				done, err := s.CompleteAndReserve(ctx, server.StepResult{StepID: c1.ID, AgentID: "z", Attempt: c1.Attempt, LeaseID: c1.LeaseID, ExitCode: &zero},
					"z-next", time.Minute)
				if err != nil || done.NextErr != nil {
					t.Fatalf("CompleteAndReserve: %v, %v", err, done.NextErr)
				}
				if done.Next == nil || done.Next.Name != c.want {
					t.Fatalf("handed %v with the result, want %s", done.Next, c.want)
				}
				if done.Next.AgentID != "z" || done.Next.LeaseID != "z-next" || done.NextRun == nil || done.NextRun.Project == "" {
					t.Errorf("next = agent %q lease %q run %+v", done.Next.AgentID, done.Next.LeaseID, done.NextRun)
				}
				// w1 waits for the next agent, whatever was chosen; so does c2
				// when it was not.
				if got := findRun(t, s, older.ID); got.Steps[1].Name != "w1" || got.Steps[1].State != "ready" {
					t.Errorf("w1 is %s, want ready", got.Steps[1].State)
				}
				if got := findRun(t, s, mine.ID); c.want != "c2" && (got.Steps[1].State != "ready" || got.Steps[1].ReadyAt.IsZero()) {
					t.Errorf("c2 is %s (ready at %v), want ready", got.Steps[1].State, got.Steps[1].ReadyAt)
				}
			})
		})
	}
}

// The successor's own update to Ready (its ${{ }} values rendered from
// what its predecessor reported) is made with its reservation: the step
// handed out carries the rendered values.
func TestSuccessorCarriesItsRenderedValues(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		ctx := t.Context()
		run := createRun(t, s, &server.Run{Project: "p", Runbook: "x", Steps: []*server.Step{
			{Name: "build", Command: "x"},
			{Name: "ship", Command: "ship ${{ steps.build.outputs.version }}", DependsOn: []string{"build"},
				Env: map[string]string{"V": "${{ steps.build.outputs.version }}"}},
		}})
		build := reserve(t, s, "z", "build")
		zero := 0
		done, err := s.CompleteAndReserve(ctx, server.StepResult{StepID: build.ID, AgentID: "z", Attempt: build.Attempt, LeaseID: build.LeaseID,
			ExitCode: &zero, Outputs: map[string]string{"version": "1.2.3"}}, "z-next", time.Minute)
		if err != nil || done.NextErr != nil || done.Next == nil {
			t.Fatalf("CompleteAndReserve: %v, %v, next %v", err, done.NextErr, done.Next)
		}
		if done.Next.Name != "ship" || done.Next.Command != "ship 1.2.3" || done.Next.Env["V"] != "1.2.3" || done.Next.ReadyAt.IsZero() {
			t.Fatalf("handed %s: command %q env %v ready at %v; want ship with 1.2.3 rendered and a ready time",
				done.Next.Name, done.Next.Command, done.Next.Env, done.Next.ReadyAt)
		}
		got := findRun(t, s, run.ID)
		if st := got.Steps[1]; st.State != "running" || st.Command != "ship 1.2.3" {
			t.Fatalf("stored: %s %q", st.State, st.Command)
		}
	})
}
