package store_test

import (
	"testing"
	"time"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/server/store"
	"github.com/baton-ci/baton/shared/engine"
	"github.com/baton-ci/baton/shared/runbook"
)

func leaseOf(st *server.Step) server.Lease {
	return server.Lease{StepID: st.ID, AgentID: st.AgentID, Attempt: st.Attempt, ID: st.LeaseID}
}

// Every step-scoped call must carry the current lease; anything else is a
// conflict, and a renewal pushes the expiry out.
func TestLeaseFencesStepCalls(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		createRun(t, s, diamond("p"))
		a := reserve(t, s, "ag", "a")
		if a.LeaseID == "" || time.Until(a.LeaseExpires) < 50*time.Second {
			t.Fatalf("reserved step lease %q expires %s, want a lease of a minute", a.LeaseID, a.LeaseExpires)
		}
		renewal, err := s.RenewLease(t.Context(), leaseOf(a), 2*time.Minute)
		if err != nil || time.Until(renewal.Expires) < 110*time.Second || renewal.Cancel {
			t.Fatalf("RenewLease = %+v, %v; want two more minutes", renewal, err)
		}
		stale := leaseOf(a)
		stale.ID = "not-the-lease"
		_, err = s.RenewLease(t.Context(), stale, time.Minute)
		wantCode(t, "RenewLease(stale)", err, server.ECONFLICT)
		wantCode(t, "AppendLog(stale)", s.AppendLog(t.Context(), stale, 0, []byte("x"), "", nil), server.ECONFLICT)
		zero := 0
		_, err = s.CompleteStep(t.Context(), server.StepResult{StepID: a.ID, AgentID: a.AgentID, Attempt: a.Attempt, LeaseID: "not-the-lease", ExitCode: &zero})
		wantCode(t, "CompleteStep(stale)", err, server.ECONFLICT)
		complete(t, s, a, 0, 2)
		_, err = s.RenewLease(t.Context(), leaseOf(a), time.Minute)
		wantCode(t, "RenewLease(ended step)", err, server.ECONFLICT)
	})
}

// A lapsed lease ends the step agent_lost: retried when its policy says so
// (as a new attempt under a new lease), failed otherwise; the lost holder's
// late calls conflict and change nothing.
func TestExpiredLeaseRetriesOrFailsAgentLost(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		run := createRun(t, s, &server.Run{Project: "p", Runbook: "x", Steps: []*server.Step{
			{Name: "a", Command: "x", Retry: runbook.Retry{Max: 1, On: runbook.DefaultRetryOn()}},
			{Name: "b", Command: "x"},
		}})
		var held []*server.Step
		for range 2 {
			st, _, err := s.ReserveStep(t.Context(), "ag", 500*time.Millisecond)
			if err != nil || st == nil {
				t.Fatalf("ReserveStep: %v, %v", st, err)
			}
			held = append(held, st)
		}
		if exp, err := s.ExpireSteps(t.Context()); err != nil || exp.Lost != 0 {
			t.Fatalf("ExpireSteps before the leases lapsed = %+v, %v", exp, err)
		}
		time.Sleep(time.Until(held[1].LeaseExpires) + 20*time.Millisecond)
		exp, err := s.ExpireSteps(t.Context())
		if err != nil || exp.Lost != 2 || exp.TimedOut != 0 || exp.Ready != 1 || len(exp.Ended) != 2 {
			t.Fatalf("ExpireSteps = %+v, %v; want 2 lost (listed), 1 ready (a's retry)", exp, err)
		}
		for _, e := range exp.Ended {
			if e.RunID != run.ID || e.Step == "" || e.AgentID == "" || e.Reason != engine.ReasonAgentLost {
				t.Errorf("ended step %+v: want its run, name, agent and agent_lost", e)
			}
		}
		got := checkStates(t, s, run.ID, engine.RunRunning, map[string]engine.StepState{"a": engine.StepReady, "b": engine.StepFailed})
		b := stepNamed(t, got, "b")
		if b.Reason != engine.ReasonAgentLost || b.Error == "" {
			t.Errorf("b ended %s %q, want agent_lost with a message", b.Reason, b.Error)
		}
		if att := stepNamed(t, got, "a").Attempts; len(att) != 1 || att[0].Reason != engine.ReasonAgentLost {
			t.Errorf("a's attempts %+v, want one lost", att)
		}
		zero := 0
		for _, st := range held {
			_, err := s.CompleteStep(t.Context(), server.StepResult{StepID: st.ID, AgentID: st.AgentID, Attempt: st.Attempt, LeaseID: st.LeaseID, ExitCode: &zero})
			wantCode(t, "late report of "+st.Name, err, server.ECONFLICT)
			_, err = s.RenewLease(t.Context(), leaseOf(st), time.Minute)
			wantCode(t, "late renewal of "+st.Name, err, server.ECONFLICT)
		}
		a2 := reserve(t, s, "ag2", "a")
		if a2.Attempt != 2 || a2.LeaseID == held[0].LeaseID {
			t.Errorf("retry of a: attempt %d lease %q, want attempt 2 under a new lease", a2.Attempt, a2.LeaseID)
		}
		complete(t, s, a2, 0, 0)
		checkStates(t, s, run.ID, engine.RunFailed, map[string]engine.StepState{"a": engine.StepSucceeded, "b": engine.StepFailed})
	})
}

// The server enforces a step's timeout on its own clock: a step whose
// agent keeps renewing the lease but never reports fails with timeout once
// its timeout and one lease length have passed.
func TestDeadlineFailsSilentStepWithTimeout(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		run := createRun(t, s, &server.Run{Project: "p", Runbook: "x", Steps: []*server.Step{
			{Name: "a", Command: "x", Timeout: time.Millisecond},
		}})
		const lease = 300 * time.Millisecond
		a, _, err := s.ReserveStep(t.Context(), "ag", lease)
		if err != nil || a == nil {
			t.Fatal(err)
		}
		start := time.Now()
		for time.Since(start) < lease+150*time.Millisecond {
			if _, err := s.RenewLease(t.Context(), leaseOf(a), lease); err != nil {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		exp, err := s.ExpireSteps(t.Context())
		if err != nil || exp.TimedOut != 1 || exp.Lost != 0 {
			t.Fatalf("ExpireSteps = %+v, %v; want 1 timed out", exp, err)
		}
		got := checkStates(t, s, run.ID, engine.RunFailed, map[string]engine.StepState{"a": engine.StepFailed})
		if st := stepNamed(t, got, "a"); st.Reason != engine.ReasonTimeout {
			t.Errorf("a ended %s, want timeout", st.Reason)
		}
	})
}

// Cancelling a run cancels what has not started, lets cleanup steps run,
// tells the holder of a running step through its lease, and ends the run
// cancelled.
func TestCancelRun(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		run := createRun(t, s, &server.Run{Project: "p", Runbook: "x", Steps: []*server.Step{
			{Name: "a", Command: "x"},
			{Name: "b", Command: "x", DependsOn: []string{"a"}},
			{Name: "c", Command: "x"},
			{Name: "onfail", Command: "x", DependsOn: []string{"a"}, If: "failure()"},
			{Name: "cleanup", Command: "x", DependsOn: []string{"a", "b"}, If: "always()"},
		}})
		const P, R, N, C, K, S = engine.StepPending, engine.StepReady, engine.StepRunning, engine.StepCancelled, engine.StepSkipped, engine.StepSucceeded
		a := reserve(t, s, "ag", "a")
		agents, err := s.CancelRun(t.Context(), run.ID)
		if err != nil || len(agents) != 1 || agents[0] != "ag" {
			t.Fatalf("CancelRun = %v, %v; want the holder of a", agents, err)
		}
		checkStates(t, s, run.ID, engine.RunRunning, map[string]engine.StepState{"a": N, "b": C, "c": C, "onfail": P, "cleanup": P})
		if renewal, err := s.RenewLease(t.Context(), leaseOf(a), time.Minute); err != nil || !renewal.Cancel {
			t.Fatalf("RenewLease after cancel = %+v, %v; want cancel", renewal, err)
		}
		ready, err := s.CompleteStep(t.Context(), server.StepResult{StepID: a.ID, AgentID: a.AgentID, Attempt: a.Attempt, LeaseID: a.LeaseID,
			Reason: engine.ReasonCancelled, Error: "cancelled: the run was cancelled"})
		if err != nil || ready != 1 {
			t.Fatalf("complete a = %d, %v; want cleanup ready", ready, err)
		}
		checkStates(t, s, run.ID, engine.RunRunning, map[string]engine.StepState{"a": C, "b": C, "c": C, "onfail": K, "cleanup": R})
		complete(t, s, reserve(t, s, "ag", "cleanup"), 0, 0)
		checkStates(t, s, run.ID, engine.RunCancelled, map[string]engine.StepState{"a": C, "b": C, "c": C, "onfail": K, "cleanup": S})
		_, err = s.CancelRun(t.Context(), run.ID)
		wantCode(t, "CancelRun(ended)", err, server.ECONFLICT)

		// Resumed, the run forgets the cancel.
		if _, err := s.ResumeRun(t.Context(), run.ID); err != nil {
			t.Fatal(err)
		}
		checkStates(t, s, run.ID, engine.RunRunning, map[string]engine.StepState{"a": R, "c": R, "b": P, "onfail": P, "cleanup": S})
	})
}
