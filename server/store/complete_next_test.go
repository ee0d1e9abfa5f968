package store_test

import (
	"testing"
	"time"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/server/store"
	"github.com/baton-ci/baton/shared/engine"
)

// A completion and the agent's next reservation share one transaction;
// when the reservation fails, the result still stands and the step it
// would have taken stays Ready for another agent. (SQLite rolls back to a
// savepoint; PostgreSQL records the result again alone.)
func TestCompleteAndReserveKeepsTheResultWhenTheReservationFails(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		ctx := t.Context()
		run := &server.Run{Project: "p", Runbook: "x", Steps: []*server.Step{
			{Name: "a", Command: "true"},
			{Name: "b", Command: "true", DependsOn: []string{"a"}},
		}}
		createRun(t, s, run)
		a, _, err := s.ReserveStep(ctx, "doomed", time.Minute)
		if err != nil || a == nil {
			t.Fatalf("reserve a: %v, %v", a, err)
		}
		// A real failure inside the reservation: recording the next attempt.
		triggers := map[string][]string{
			"sqlite": {`CREATE TRIGGER refuse BEFORE INSERT ON step_attempts WHEN NEW.agent_id = 'doomed'
				BEGIN SELECT RAISE(ABORT, 'no more attempts for doomed'); END`},
			"postgres": {`CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN
				IF NEW.agent_id = 'doomed' THEN RAISE EXCEPTION 'no more attempts for doomed'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql`,
				`CREATE TRIGGER refuse BEFORE INSERT ON step_attempts FOR EACH ROW EXECUTE FUNCTION refuse()`},
		}
		for _, q := range triggers[store.Dialect(s)] {
			if err := store.ExecSQL(s, q); err != nil {
				t.Fatal(err)
			}
		}
		zero := 0
		c, err := s.CompleteAndReserve(ctx, server.StepResult{StepID: a.ID, AgentID: "doomed", Attempt: a.Attempt, LeaseID: a.LeaseID, ExitCode: &zero},
			"next-lease", time.Minute)
		if err != nil {
			t.Fatalf("CompleteAndReserve: %v (the result must stand)", err)
		}
		if c.NextErr == nil || c.Next != nil {
			t.Fatalf("the next reservation should have failed: next %v, err %v", c.Next, c.NextErr)
		}
		if c.Ready != 1 {
			t.Errorf("ready = %d, want 1 (b)", c.Ready)
		}
		got := findRun(t, s, run.ID)
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
	})
}
