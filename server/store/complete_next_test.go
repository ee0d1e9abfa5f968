package store

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/shared/engine"
)

// On SQLite a completion and the agent's next reservation share one turn
// of the writer; the reservation has a savepoint of its own, so when it
// fails the result still stands and the step it would have taken stays
// Ready for another agent.
func TestCompleteAndReserveKeepsTheResultWhenTheReservationFails(t *testing.T) {
	s, err := OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "baton.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	run := &server.Run{Project: "p", Runbook: "x", Steps: []*server.Step{
		{Name: "a", Command: "true"},
		{Name: "b", Command: "true", DependsOn: []string{"a"}},
	}}
	if err := s.CreateRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	a, _, err := s.ReserveStep(ctx, "doomed", time.Minute)
	if err != nil || a == nil {
		t.Fatalf("reserve a: %v, %v", a, err)
	}
	// A real failure inside the reservation: recording the next attempt.
	if err := s.db.Exec(`CREATE TRIGGER refuse BEFORE INSERT ON step_attempts WHEN NEW.attempt > 0 AND NEW.agent_id = 'doomed'
		BEGIN SELECT RAISE(ABORT, 'no more attempts for doomed'); END`).Error; err != nil {
		t.Fatal(err)
	}
	zero := 0
	c, err := s.CompleteAndReserve(ctx, server.StepResult{StepID: a.ID, AgentID: "doomed", Attempt: a.Attempt, LeaseID: a.LeaseID, ExitCode: &zero},
		"next-lease", time.Minute)
	if err != nil {
		t.Fatalf("CompleteAndReserve: %v (the result must stand)", err)
	}
	if c.NextErr == nil || c.Next != nil {
		r, _ := s.FindRun(ctx, run.ID)
		for _, st := range r.Steps {
			t.Logf("%s %s %s %d", st.Name, st.State, st.AgentID, st.Attempt)
		}
		t.Fatalf("the next reservation should have failed: next %v, err %v", c.Next, c.NextErr)
	}
	if c.Ready != 1 {
		t.Errorf("ready = %d, want 1 (b)", c.Ready)
	}
	got, err := s.FindRun(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]engine.StepState{}
	for _, st := range got.Steps {
		states[st.Name] = st.State
	}
	if states["a"] != engine.StepSucceeded || states["b"] != engine.StepReady {
		t.Fatalf("states %v, want a succeeded and b ready (not taken by the failed reservation)", states)
	}
	b, _, err := s.ReserveStep(ctx, "other", time.Minute)
	if err != nil || b == nil || b.Name != "b" || b.Attempt != 1 {
		t.Fatalf("another agent reserves b: %+v, %v", b, err)
	}
}
