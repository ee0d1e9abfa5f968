package store_test

import (
	"fmt"

	"testing"
	"time"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/server/store"
	"github.com/baton-ci/baton/shared/engine"
	"github.com/baton-ci/baton/shared/runbook"
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

// The last chunk of a step's output comes with its result: it is stored
// (on PostgreSQL by the step's own UPDATE, unless an assert reads the
// output first) and the assert judges the output with it.
func TestCompletionStoresItsLastChunkBeforeTheAssertReadsIt(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		ctx := t.Context()
		matches := &runbook.Assert{OutputMatches: "(?m)^done$"}
		run := createRun(t, s, &server.Run{Project: "p", Runbook: "x", Steps: []*server.Step{
			{Name: "a", Command: "x", Assert: matches},
			{Name: "b", Command: "x", DependsOn: []string{"a"}},
			{Name: "c", Command: "x", DependsOn: []string{"b"}, Assert: matches},
		}})
		zero := 0
		finish := func(st *server.Step, offset int64, data string) server.Completion {
			t.Helper()
			c, err := s.CompleteAndReserve(ctx, server.StepResult{StepID: st.ID, AgentID: st.AgentID, Attempt: st.Attempt, LeaseID: st.LeaseID, ExitCode: &zero,
				Log: &server.LogAppend{Offset: offset, Data: []byte(data), Times: "0:1"}}, "", time.Minute)
			if err != nil || c.NextErr != nil {
				t.Fatalf("complete %s: %v, %v", st.Name, err, c.NextErr)
			}
			return c
		}
		a := reserve(t, s, "x", "a")
		if err := s.AppendLog(ctx, server.Lease{StepID: a.ID, AgentID: a.AgentID, Attempt: a.Attempt, ID: a.LeaseID}, 0, []byte("hello\n"), "0:1", nil); err != nil {
			t.Fatal(err)
		}
		b := finish(a, 6, "done\n").Next // the assert needs the chunk that came with the result
		if b == nil || b.Name != "b" {
			t.Fatalf("after a: next %v, want b", b)
		}
		c := finish(b, 0, "not yet\n").Next // no assert: the chunk goes with the step's update
		if c == nil || c.Name != "c" {
			t.Fatalf("after b: next %v, want c", c)
		}
		finish(c, 0, "nothing\n") // the chunk does not match
		got := findRun(t, s, run.ID)
		if states := fmt.Sprint(got.Steps[0].State, got.Steps[1].State, got.Steps[2].State); states != "succeededsucceededfailed" {
			t.Errorf("states %s, want a and b succeeded, c failed its assert", states)
		}
		for name, want := range map[string]string{"a": "hello\ndone\n", "b": "not yet\n", "c": "nothing\n"} {
			if log, err := s.StepLog(ctx, run.ID, name, 1); err != nil || string(log) != want {
				t.Errorf("log of %s: %q, %v; want %q", name, log, err, want)
			}
		}
	})
}
