package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/server/store"
	"github.com/baton-ci/baton/shared/engine"
)

// groupOf queues the completions of steps (one agent each, asking for a
// next step) one after another, so that they form one group in that order,
// then lets the group run. It returns what each got, in order.
func groupOf(t *testing.T, s *store.DB, results ...server.StepResult) ([]server.Completion, []error, []int) {
	t.Helper()
	return startGroup(t, s, results...)()
}

// startGroup is groupOf that returns once the group has been let run;
// wait waits for the outcomes.
func startGroup(t *testing.T, s *store.DB, results ...server.StepResult) (wait func() ([]server.Completion, []error, []int)) {
	t.Helper()
	queued, release, sizes := store.HoldCompletions(s)
	type outcome struct {
		c   server.Completion
		err error
	}
	outs := make([]chan outcome, len(results))
	for i, res := range results {
		outs[i] = make(chan outcome, 1)
		go func() {
			c, err := s.CompleteAndReserve(t.Context(), res, "", time.Minute)
			outs[i] <- outcome{c, err}
		}()
		waitFor(t, "completion queued", func() bool { return queued() == i+1 })
	}
	release()
	return func() ([]server.Completion, []error, []int) {
		t.Helper()
		cs, errs := make([]server.Completion, len(results)), make([]error, len(results))
		for i, ch := range outs {
			select {
			case o := <-ch:
				cs[i], errs[i] = o.c, o.err
			case <-time.After(10 * time.Second):
				t.Fatalf("completion %d did not return", i)
			}
		}
		return cs, errs, sizes()
	}
}

func resultOf(st *server.Step) server.StepResult {
	zero := 0
	return server.StepResult{StepID: st.ID, AgentID: st.AgentID, Attempt: st.Attempt, LeaseID: st.LeaseID, ExitCode: &zero}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// Two parallel steps of one run completing in one group: the second sees
// what the first wrote, so their join becomes Ready exactly once, and
// goes to one of their agents.
func TestGroupedCompletionsReadyAJoinOnce(t *testing.T) {
	s := postgresDB(t).Open(t)
	run := createRun(t, s, &server.Run{Project: "p", Runbook: "x", Steps: []*server.Step{
		{Name: "a", Command: "x"},
		{Name: "b", Command: "x", DependsOn: []string{"a"}},
		{Name: "c", Command: "x", DependsOn: []string{"a"}},
		{Name: "d", Command: "x", DependsOn: []string{"b", "c"}},
	}})
	complete(t, s, reserve(t, s, "x", "a"), 0, 2)
	b, c := reserve(t, s, "x", "b"), reserve(t, s, "y", "c")
	cs, errs, sizes := groupOf(t, s, resultOf(b), resultOf(c))
	if !slices.Equal(sizes, []int{2}) {
		t.Fatalf("groups %v, want one of 2", sizes)
	}
	for i, err := range errs {
		if err != nil || cs[i].NextErr != nil {
			t.Fatalf("completion %d: %v, %v", i, err, cs[i].NextErr)
		}
	}
	if cs[0].Ready+cs[1].Ready != 1 || cs[0].Next != nil || cs[1].Next == nil || cs[1].Next.Name != "d" {
		t.Fatalf("ready %d and %d, next %v and %v: want d made Ready once, by the second, and handed to its agent",
			cs[0].Ready, cs[1].Ready, cs[0].Next, cs[1].Next)
	}
	got := findRun(t, s, run.ID)
	if st := got.Steps[3]; st.State != engine.StepRunning || st.Attempt != 1 || st.AgentID != "y" {
		t.Fatalf("d is %s, attempt %d, on %q; want running, attempt 1, on y", st.State, st.Attempt, st.AgentID)
	}
	if n, err := store.CountRows(s, "step_attempts", "step_id = ?", got.Steps[3].ID); err != nil || n != 1 {
		t.Fatalf("d has %d attempts, %v; want 1", n, err)
	}
}

// A completion whose run another transaction holds does not wait inside
// its group, holding the group's runs: it leaves the group, which
// commits, and waits alone.
func TestGroupedCompletionLeavesForALockedRun(t *testing.T) {
	s := postgresDB(t).Open(t)
	one := createRun(t, s, &server.Run{Project: "p", Runbook: "x", Steps: []*server.Step{{Name: "one", Command: "x"}}})
	two := createRun(t, s, &server.Run{Project: "p", Runbook: "x", Steps: []*server.Step{{Name: "two", Command: "x"}}})
	first, second := reserve(t, s, "x", "one"), reserve(t, s, "y", "two")
	unlock := store.LockRun(t, s, two.ID)
	wait := startGroup(t, s, resultOf(first), resultOf(second))
	// The group commits the first completion while the second waits.
	waitFor(t, "the first run to succeed", func() bool { return findRun(t, s, one.ID).State == engine.RunSucceeded })
	if st := findRun(t, s, two.ID).Steps[0].State; st != engine.StepRunning {
		t.Fatalf("two is %s while its run is locked, want running", st)
	}
	unlock()
	_, errs, sizes := wait()
	if !slices.Equal(sizes, []int{2}) {
		t.Fatalf("groups %v, want one of 2", sizes)
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if got := findRun(t, s, two.ID); got.State != engine.RunSucceeded {
		t.Fatalf("run two is %s, want succeeded", got.State)
	}
}

// A completion that fails in a group takes nothing of the group with it:
// the group is undone, and each completion runs again alone, with its own
// outcome.
func TestGroupFailureRunsEachCompletionAlone(t *testing.T) {
	s := postgresDB(t).Open(t)
	one := createRun(t, s, &server.Run{Project: "p", Runbook: "x", Steps: []*server.Step{
		{Name: "one", Command: "x"}, {Name: "next", Command: "x", DependsOn: []string{"one"}}}})
	two := createRun(t, s, &server.Run{Project: "p", Runbook: "x", Steps: []*server.Step{{Name: "two", Command: "x"}}})
	first, second := reserve(t, s, "x", "one"), reserve(t, s, "y", "two")
	stale := resultOf(second)
	stale.LeaseID = "not-the-lease"
	cs, errs, sizes := groupOf(t, s, resultOf(first), stale)
	if !slices.Equal(sizes, []int{2}) {
		t.Fatalf("groups %v, want one of 2", sizes)
	}
	if errs[0] != nil || cs[0].Next == nil || cs[0].Next.Name != "next" {
		t.Fatalf("the good completion: %v, next %v; want next handed", errs[0], cs[0].Next)
	}
	if server.ErrorCode(errs[1]) != server.ECONFLICT {
		t.Fatalf("the stale completion: %v, want a conflict", errs[1])
	}
	got := findRun(t, s, one.ID)
	if got.Steps[0].State != engine.StepSucceeded || got.Steps[1].State != engine.StepRunning || got.Steps[1].Attempt != 1 {
		t.Fatalf("run one: %s and %s (attempt %d); want one succeeded, next running its first attempt",
			got.Steps[0].State, got.Steps[1].State, got.Steps[1].Attempt)
	}
	if n, err := store.CountRows(s, "step_attempts", "step_id = ?", got.Steps[1].ID); err != nil || n != 1 {
		t.Fatalf("next has %d attempts, %v; want 1", n, err)
	}
	if st := findRun(t, s, two.ID).Steps[0].State; st != engine.StepRunning {
		t.Fatalf("two is %s, want still running", st)
	}
}

// A completion waits for no lock but its run's: the successor's
// reservation leaves the project's served mark to the transaction that
// holds the project's row, rather than wait for it.
func TestSuccessorDoesNotWaitForItsProject(t *testing.T) {
	s := postgresDB(t).Open(t)
	createRun(t, s, &server.Run{Project: "p", Runbook: "x", Steps: []*server.Step{
		{Name: "a", Command: "x"}, {Name: "b", Command: "x", DependsOn: []string{"a"}}}})
	a := reserve(t, s, "x", "a")
	createRun(t, s, &server.Run{Project: "q", Runbook: "x", Steps: []*server.Step{{Name: "other", Command: "x"}}})
	reserve(t, s, "y", "other") // q is served last: p's mark would change
	unlock := store.LockProject(t, s, "p")
	done := make(chan server.Completion, 1)
	go func() {
		c, err := s.CompleteAndReserve(t.Context(), resultOf(a), "", time.Minute)
		if err != nil {
			c.NextErr = err
		}
		done <- c
	}()
	select {
	case c := <-done:
		if c.NextErr != nil || c.Next == nil || c.Next.Name != "b" {
			t.Fatalf("next %v, %v; want b", c.Next, c.NextErr)
		}
	case <-time.After(5 * time.Second):
		unlock()
		t.Fatal("the completion waited for the project's row")
	}
}

// In a group, a completion with no successor to take gets its agent's
// next step from the queue after the group's commit, in a transaction of
// its own (inside the group, the fair pick might wait for a lock).
func TestGroupedCompletionReservesFromTheQueueAfterwards(t *testing.T) {
	s := postgresDB(t).Open(t)
	createRun(t, s, &server.Run{Project: "p", Runbook: "x", Steps: []*server.Step{
		{Name: "one", Command: "x"}, {Name: "next", Command: "x", DependsOn: []string{"one"}}}})
	createRun(t, s, &server.Run{Project: "p", Runbook: "x", Steps: []*server.Step{{Name: "two", Command: "x"}}})
	first, second := reserve(t, s, "x", "one"), reserve(t, s, "y", "two")
	createRun(t, s, &server.Run{Project: "p", Runbook: "x", Steps: []*server.Step{{Name: "waiting", Command: "x"}}})
	cs, errs, sizes := groupOf(t, s, resultOf(first), resultOf(second))
	if !slices.Equal(sizes, []int{2}) {
		t.Fatalf("groups %v, want one of 2", sizes)
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if cs[0].Next == nil || cs[0].Next.Name != "next" || cs[1].Next == nil || cs[1].Next.Name != "waiting" || cs[1].Next.AgentID != "y" {
		t.Fatalf("next %v and %v: want next for x, waiting for y", cs[0].Next, cs[1].Next)
	}
}

// Many agents completing and taking their next steps at once, on runs
// whose steps fan out and join, with runs cancelled midway: completions
// share transactions, and still every join runs once, every step has as
// many attempts as it ran, and every run ends in agreement with its steps.
func TestGroupedCompletionsUnderLoad(t *testing.T) {
	s := postgresDB(t).Open(t)
	counts := store.WatchCompletionGroups(s)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	const runs, width, agents = 12, 6, 12
	var ids []string
	for i := range runs {
		run := &server.Run{Project: fmt.Sprintf("p%d", i%3), Runbook: "x",
			Steps: []*server.Step{{Name: "start", Command: "x"}}}
		var fan []string
		for j := range width {
			name := fmt.Sprintf("f%d", j)
			fan = append(fan, name)
			run.Steps = append(run.Steps, &server.Step{Name: name, Command: "x", DependsOn: []string{"start"}})
		}
		run.Steps = append(run.Steps, &server.Step{Name: "join", Command: "x", DependsOn: fan},
			&server.Step{Name: "end", Command: "x", DependsOn: []string{"join"}})
		createRun(t, s, run)
		ids = append(ids, run.ID)
	}
	var wg sync.WaitGroup
	errs := make(chan error, agents+1)
	for a := range agents {
		agent := fmt.Sprintf("agent-%d", a)
		wg.Go(func() {
			var st *server.Step
			for ctx.Err() == nil {
				if st == nil {
					var err error
					if st, _, err = s.ReserveStep(ctx, agent, time.Minute); err != nil {
						errs <- fmt.Errorf("%s: reserve: %w", agent, err)
						return
					}
					if st == nil {
						if done, err := over(ctx, s, ids); done || err != nil {
							if err != nil {
								errs <- err
							}
							return
						}
						time.Sleep(2 * time.Millisecond) // an agent's poll
						continue
					}
				}
				c, err := s.CompleteAndReserve(ctx, resultOf(st), "", time.Minute)
				if err != nil && server.ErrorCode(err) != server.ECONFLICT { // a cancelled step's report conflicts
					errs <- fmt.Errorf("%s: complete %s: %w", agent, st.Name, err)
					return
				}
				st = c.Next
			}
		})
	}
	for _, id := range ids[:2] { // cancelled while they run (or, if they ended first, a conflict)
		waitFor(t, "run "+id+" running", func() bool { return findRun(t, s, id).State != engine.RunPending })
		if _, err := s.CancelRun(ctx, id); err != nil && server.ErrorCode(err) != server.ECONFLICT {
			t.Errorf("cancel %s: %v", id, err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if done, err := over(t.Context(), s, ids); !done || err != nil {
		t.Fatalf("not every run ended (%v)", err)
	}
	for i, id := range ids {
		got := findRun(t, s, id)
		if i >= 2 && got.State != engine.RunSucceeded {
			t.Errorf("run %d is %s, want succeeded", i, got.State)
		}
		for _, st := range got.Steps {
			n, err := store.CountRows(s, "step_attempts", "step_id = ?", st.ID)
			if err != nil {
				t.Fatal(err)
			}
			if int(n) != st.Attempt || st.Attempt > 1 {
				t.Errorf("run %d step %s: attempt %d, %d attempts recorded", i, st.Name, st.Attempt, n)
			}
		}
	}
	groups, grouped := counts()
	t.Logf("%d groups held %d completions", groups, grouped)
	if groups == 0 {
		t.Error("no completions shared a transaction")
	}
}

// over says whether every run has ended.
func over(ctx context.Context, s *store.DB, ids []string) (bool, error) {
	for _, id := range ids {
		run, err := s.FindRun(ctx, id)
		if err != nil || !run.State.Terminal() {
			return false, err
		}
	}
	return true, nil
}
