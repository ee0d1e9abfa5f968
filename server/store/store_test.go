package store_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/server/store"
	"github.com/baton-ci/baton/shared/engine"
	"github.com/baton-ci/baton/shared/runbook"
)

// diamond is a -> {b, c} -> d: b and c depend on a, d depends on b and c.
func diamond(project string) *server.Run {
	return &server.Run{
		Project: project,
		Name:    "diamond",
		Runbook: "steps: [a, b, c, d]\n",
		Steps: []*server.Step{
			{Name: "a", Command: "echo a", Image: "busybox", Env: map[string]string{"K": "v"}},
			{Name: "b", Command: "echo b", DependsOn: []string{"a"}},
			{Name: "c", Command: "echo c", DependsOn: []string{"a"}},
			{Name: "d", Command: "echo d", DependsOn: []string{"b", "c"}},
		},
	}
}

func createRun(t *testing.T, s *store.DB, run *server.Run) *server.Run {
	t.Helper()
	if err := s.CreateRun(t.Context(), run); err != nil {
		t.Fatalf("CreateRun: %v", err)
	}
	return run
}

func findRun(t *testing.T, s *store.DB, id string) *server.Run {
	t.Helper()
	run, err := s.FindRun(t.Context(), id)
	if err != nil {
		t.Fatalf("FindRun(%s): %v", id, err)
	}
	return run
}

// checkStates fails unless the stored run has exactly these step states and
// this run state.
func checkStates(t *testing.T, s *store.DB, runID string, wantRun engine.RunState, want map[string]engine.StepState) *server.Run {
	t.Helper()
	run := findRun(t, s, runID)
	got := make(map[string]engine.StepState, len(run.Steps))
	for _, st := range run.Steps {
		got[st.Name] = st.State
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("step states = %v, want %v", got, want)
	}
	if run.State != wantRun {
		t.Errorf("run state = %s, want %s", run.State, wantRun)
	}
	return run
}

func stepNamed(t *testing.T, run *server.Run, name string) *server.Step {
	t.Helper()
	for _, st := range run.Steps {
		if st.Name == name {
			return st
		}
	}
	t.Fatalf("run %s has no step %q", run.ID, name)
	return nil
}

// reserve reserves the next Ready step for agentID and fails unless it is the
// step named want.
func reserve(t *testing.T, s *store.DB, agentID, want string) *server.Step {
	t.Helper()
	step, run, err := s.ReserveStep(t.Context(), agentID, time.Minute)
	if err != nil {
		t.Fatalf("ReserveStep: %v", err)
	}
	if step == nil {
		t.Fatalf("ReserveStep = nil, want step %q", want)
	}
	if step.Name != want {
		t.Fatalf("ReserveStep = step %q, want %q", step.Name, want)
	}
	if run == nil || run.ID != step.RunID {
		t.Fatalf("ReserveStep returned run %+v for step of run %s", run, step.RunID)
	}
	if step.State != engine.StepRunning || step.AgentID != agentID || step.StartedAt == nil || step.FinishedAt != nil {
		t.Fatalf("reserved step = state %s agent %q started %v finished %v, want running for %s, started, not finished",
			step.State, step.AgentID, step.StartedAt, step.FinishedAt, agentID)
	}
	return step
}

// complete reports exit for st; wantReady < 0 does not check how many became ready.
func complete(t *testing.T, s *store.DB, st *server.Step, exit int, wantReady int) {
	t.Helper()
	ready, err := s.CompleteStep(t.Context(), server.StepResult{StepID: st.ID, LeaseID: st.LeaseID, AgentID: st.AgentID, Attempt: st.Attempt, ExitCode: &exit})
	if err != nil {
		t.Fatalf("CompleteStep(%s, exit %d): %v", st.Name, exit, err)
	}
	if wantReady >= 0 && ready != wantReady {
		t.Errorf("CompleteStep(%s, exit %d) made %d steps ready, want %d", st.Name, exit, ready, wantReady)
	}
}

func noneReady(t *testing.T, s *store.DB) {
	t.Helper()
	step, _, err := s.ReserveStep(t.Context(), "agent-x", time.Minute)
	if err != nil {
		t.Fatalf("ReserveStep: %v", err)
	}
	if step != nil {
		t.Fatalf("ReserveStep = step %q, want nothing ready", step.Name)
	}
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := server.ErrorCode(err); got != code {
		t.Errorf("%s: error code %q (err %v), want %q", what, got, err, code)
	}
}

func TestCreateRunMakesOnlyEntryStepsReady(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		run := createRun(t, s, diamond("web"))
		if run.ID == "" || run.State != engine.RunPending {
			t.Fatalf("created run id %q state %s, want an id and pending", run.ID, run.State)
		}

		got := checkStates(t, s, run.ID, engine.RunPending, map[string]engine.StepState{
			"a": engine.StepReady, "b": engine.StepPending, "c": engine.StepPending, "d": engine.StepPending,
		})
		if got.Project != "web" || got.Name != "diamond" || got.Runbook != run.Runbook {
			t.Errorf("run = project %q name %q runbook %q, want web, diamond, %q", got.Project, got.Name, got.Runbook, run.Runbook)
		}
		if got.StartedAt != nil || got.FinishedAt != nil || got.CreatedAt.IsZero() {
			t.Errorf("new run times: created %v started %v finished %v", got.CreatedAt, got.StartedAt, got.FinishedAt)
		}
		for i, st := range got.Steps {
			if st.Index != i || st.Name != "abcd"[i:i+1] {
				t.Errorf("step %d = %q index %d: steps must come back in runbook order", i, st.Name, st.Index)
			}
		}
		a, d := stepNamed(t, got, "a"), stepNamed(t, got, "d")
		if a.Image != "busybox" || a.Command != "echo a" || a.Env["K"] != "v" || len(a.DependsOn) != 0 {
			t.Errorf("step a = %+v", a)
		}
		if fmt.Sprint(d.DependsOn) != "[b c]" {
			t.Errorf("step d depends on %v, want [b c]", d.DependsOn)
		}

		// A second run in the same project reuses the project.
		other := createRun(t, s, diamond("web"))
		if findRun(t, s, other.ID).Project != "web" {
			t.Errorf("second run lost its project")
		}
	})
}

func TestFindRunUnknownIsNotFound(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		_, err := s.FindRun(t.Context(), "no-such-run")
		wantCode(t, "FindRun(unknown)", err, server.ENOTFOUND)
		_, err = s.StepLog(t.Context(), "no-such-run", "a", 0)
		wantCode(t, "StepLog(unknown run)", err, server.ENOTFOUND)
		run := createRun(t, s, diamond("p"))
		_, err = s.StepLog(t.Context(), run.ID, "zz", 0)
		wantCode(t, "StepLog(unknown step)", err, server.ENOTFOUND)
	})
}

func TestDAGAdvancesOnSuccess(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		run := createRun(t, s, diamond("p"))

		a := reserve(t, s, "agent-1", "a")
		if a.Attempt != 1 {
			t.Errorf("first reservation attempt = %d, want 1", a.Attempt)
		}
		got := checkStates(t, s, run.ID, engine.RunRunning, map[string]engine.StepState{
			"a": engine.StepRunning, "b": engine.StepPending, "c": engine.StepPending, "d": engine.StepPending,
		})
		if got.StartedAt == nil {
			t.Errorf("run has no started_at after its first step was reserved")
		}
		noneReady(t, s)

		complete(t, s, a, 0, 2)
		checkStates(t, s, run.ID, engine.RunRunning, map[string]engine.StepState{
			"a": engine.StepSucceeded, "b": engine.StepReady, "c": engine.StepReady, "d": engine.StepPending,
		})

		b := reserve(t, s, "agent-1", "b")
		c := reserve(t, s, "agent-2", "c")
		noneReady(t, s)

		complete(t, s, b, 0, 0)
		checkStates(t, s, run.ID, engine.RunRunning, map[string]engine.StepState{
			"a": engine.StepSucceeded, "b": engine.StepSucceeded, "c": engine.StepRunning, "d": engine.StepPending,
		})
		noneReady(t, s)

		complete(t, s, c, 0, 1)
		checkStates(t, s, run.ID, engine.RunRunning, map[string]engine.StepState{
			"a": engine.StepSucceeded, "b": engine.StepSucceeded, "c": engine.StepSucceeded, "d": engine.StepReady,
		})

		d := reserve(t, s, "agent-2", "d")
		complete(t, s, d, 0, 0)
		got = checkStates(t, s, run.ID, engine.RunSucceeded, map[string]engine.StepState{
			"a": engine.StepSucceeded, "b": engine.StepSucceeded, "c": engine.StepSucceeded, "d": engine.StepSucceeded,
		})
		if got.FinishedAt == nil {
			t.Errorf("succeeded run has no finished_at")
		}
		for _, st := range got.Steps {
			if st.ExitCode == nil || *st.ExitCode != 0 || st.StartedAt == nil || st.FinishedAt == nil {
				t.Errorf("step %s: exit %v started %v finished %v, want exit 0 and both times", st.Name, st.ExitCode, st.StartedAt, st.FinishedAt)
			}
		}
		if b := stepNamed(t, got, "b"); b.AgentID != "agent-1" {
			t.Errorf("step b agent = %q, want agent-1", b.AgentID)
		}
		noneReady(t, s)
	})
}

func TestDAGFailureSkipsDependentsAndWaitsForRunningBranch(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		run := createRun(t, s, diamond("p"))

		complete(t, s, reserve(t, s, "agent-1", "a"), 0, 2)
		b := reserve(t, s, "agent-1", "b")
		c := reserve(t, s, "agent-2", "c")

		complete(t, s, b, 1, 0)
		got := checkStates(t, s, run.ID, engine.RunRunning, map[string]engine.StepState{
			"a": engine.StepSucceeded, "b": engine.StepFailed, "c": engine.StepRunning, "d": engine.StepSkipped,
		})
		if got.FinishedAt != nil {
			t.Errorf("run has finished_at %v while c is still running", got.FinishedAt)
		}
		if d := stepNamed(t, got, "d"); d.FinishedAt == nil || d.StartedAt != nil || d.ExitCode != nil {
			t.Errorf("skipped d: started %v finished %v exit %v, want only finished", d.StartedAt, d.FinishedAt, d.ExitCode)
		}
		if b := stepNamed(t, got, "b"); b.ExitCode == nil || *b.ExitCode != 1 {
			t.Errorf("failed b exit code = %v, want 1", b.ExitCode)
		}
		noneReady(t, s)

		// c is untouched by b's failure: it still owns its step and can report.
		if err := s.AppendLog(t.Context(), server.Lease{StepID: c.ID, AgentID: c.AgentID, Attempt: c.Attempt, ID: c.LeaseID}, 0, []byte("still going\n"), "", nil); err != nil {
			t.Fatalf("AppendLog on the surviving branch: %v", err)
		}
		complete(t, s, c, 0, 0)
		got = checkStates(t, s, run.ID, engine.RunFailed, map[string]engine.StepState{
			"a": engine.StepSucceeded, "b": engine.StepFailed, "c": engine.StepSucceeded, "d": engine.StepSkipped,
		})
		if got.FinishedAt == nil {
			t.Errorf("failed run has no finished_at")
		}
	})
}

func TestCompleteStepWithErrorAndNoExitCodeFails(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		run := createRun(t, s, diamond("p"))
		a := reserve(t, s, "agent-1", "a")
		res := server.StepResult{StepID: a.ID, LeaseID: a.LeaseID, AgentID: a.AgentID, Attempt: a.Attempt, Error: "image busybox not found"}
		if _, err := s.CompleteStep(t.Context(), res); err != nil {
			t.Fatalf("CompleteStep: %v", err)
		}
		got := checkStates(t, s, run.ID, engine.RunFailed, map[string]engine.StepState{
			"a": engine.StepFailed, "b": engine.StepSkipped, "c": engine.StepSkipped, "d": engine.StepSkipped,
		})
		if a := stepNamed(t, got, "a"); a.ExitCode != nil || a.Error != res.Error {
			t.Errorf("step a exit %v error %q, want nil and %q", a.ExitCode, a.Error, res.Error)
		}
		// Retrying the same report is acknowledged; exit code 0 now is a conflict.
		if _, err := s.CompleteStep(t.Context(), res); err != nil {
			t.Errorf("retried CompleteStep: %v", err)
		}
		zero := 0
		_, err := s.CompleteStep(t.Context(), server.StepResult{StepID: a.ID, LeaseID: a.LeaseID, AgentID: a.AgentID, Attempt: a.Attempt, ExitCode: &zero})
		wantCode(t, "CompleteStep(different result)", err, server.ECONFLICT)
	})
}

func TestReserveTakesOldestRunFirst(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		first := createRun(t, s, diamond("p"))
		second := createRun(t, s, diamond("p"))
		for _, want := range []string{first.ID, second.ID} {
			st := reserve(t, s, "agent-1", "a")
			if st.RunID != want {
				t.Errorf("reserved a of run %s, want run %s", st.RunID, want)
			}
		}
		noneReady(t, s)
	})
}

func TestConcurrentReservationNeverDuplicates(t *testing.T) {
	eachDB(t, func(t *testing.T, db testDB) {
		const steps, workers = 200, 8
		// Two stores on one database: two server replicas.
		replicas := []*store.DB{db.Open(t), db.Open(t)}
		s := replicas[0]
		run := &server.Run{Project: "load", Runbook: "many"}
		for i := range steps {
			run.Steps = append(run.Steps, &server.Step{Name: fmt.Sprintf("s%03d", i), Command: "true"})
		}
		createRun(t, s, run)

		var (
			mu    sync.Mutex
			owner = map[string]string{} // step id -> agent
			dups  []string
			errs  []error
			wg    sync.WaitGroup
			start = make(chan struct{})
		)
		for w := range workers {
			agent := fmt.Sprintf("agent-%d", w)
			s := replicas[w%len(replicas)]
			wg.Go(func() {
				<-start
				for {
					st, _, err := s.ReserveStep(context.Background(), agent, time.Minute)
					if err != nil {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
						return
					}
					if st == nil {
						return
					}
					mu.Lock()
					if prev, ok := owner[st.ID]; ok {
						dups = append(dups, fmt.Sprintf("%s to %s and %s", st.Name, prev, agent))
					}
					owner[st.ID] = agent
					mu.Unlock()
				}
			})
		}
		close(start)
		wg.Wait()

		locked := 0
		for _, err := range errs {
			if strings.Contains(err.Error(), "database is locked") || strings.Contains(err.Error(), "SQLITE_BUSY") {
				locked++
			}
		}
		if len(errs) > 0 {
			t.Errorf("%d reservation errors (%d \"database is locked\"), first: %v", len(errs), locked, errs[0])
		}
		if len(dups) > 0 {
			t.Errorf("%d steps reserved twice: %v", len(dups), dups)
		}
		if len(owner) != steps {
			t.Errorf("reserved %d distinct steps, want %d", len(owner), steps)
		}
		got := findRun(t, s, run.ID)
		for _, st := range got.Steps {
			if st.State != engine.StepRunning || st.Attempt != 1 || st.AgentID != owner[st.ID] {
				t.Errorf("step %s: state %s attempt %d agent %q, want running, 1, %q", st.Name, st.State, st.Attempt, st.AgentID, owner[st.ID])
			}
		}
	})
}

// TestConcurrentWorkersFinishRun mixes the write paths an agent fleet uses at
// once: reserve, upload a log chunk, complete (which reads before it writes,
// the pattern that deferred SQLite transactions turn into "database is
// locked").
func TestConcurrentWorkersFinishRun(t *testing.T) {
	eachDB(t, func(t *testing.T, db testDB) {
		const steps, workers = 80, 8
		// Two stores on one database: two server replicas.
		replicas := []*store.DB{db.Open(t), db.Open(t)}
		s := replicas[0]
		run := &server.Run{Project: "load", Runbook: "many"}
		for i := range steps {
			run.Steps = append(run.Steps, &server.Step{Name: fmt.Sprintf("s%03d", i), Command: "true"})
		}
		createRun(t, s, run)

		errs := make(chan error, workers)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for w := range workers {
			agent := fmt.Sprintf("agent-%d", w)
			s := replicas[w%len(replicas)]
			wg.Go(func() {
				<-start
				ctx := context.Background()
				for {
					st, _, err := s.ReserveStep(ctx, agent, time.Minute)
					if err != nil || st == nil {
						errs <- err
						return
					}
					if err := s.AppendLog(ctx, server.Lease{StepID: st.ID, AgentID: agent, Attempt: st.Attempt, ID: st.LeaseID}, 0, []byte(agent), "", nil); err != nil {
						errs <- fmt.Errorf("AppendLog %s: %w", st.Name, err)
						return
					}
					zero := 0
					if _, err := s.CompleteStep(ctx, server.StepResult{StepID: st.ID, LeaseID: st.LeaseID, AgentID: agent, Attempt: st.Attempt, ExitCode: &zero}); err != nil {
						errs <- fmt.Errorf("CompleteStep %s: %w", st.Name, err)
						return
					}
				}
			})
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("worker: %v", err)
			}
		}

		got := findRun(t, s, run.ID)
		if got.State != engine.RunSucceeded {
			t.Errorf("run state = %s, want succeeded", got.State)
		}
		for _, st := range got.Steps {
			log, err := s.StepLog(t.Context(), run.ID, st.Name, 0)
			if st.State != engine.StepSucceeded || st.Attempt != 1 || err != nil || string(log) != st.AgentID {
				t.Errorf("step %s: state %s attempt %d agent %q log %q (err %v), want succeeded once with its agent's log",
					st.Name, st.State, st.Attempt, st.AgentID, log, err)
			}
		}
	})
}

func TestAppendLogIsIdempotentAndOwned(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		run := createRun(t, s, diamond("p"))
		a := reserve(t, s, "agent-1", "a")
		ctx := t.Context()

		appendLog := func(offset int64, data string) {
			t.Helper()
			if err := s.AppendLog(ctx, server.Lease{StepID: a.ID, AgentID: a.AgentID, Attempt: a.Attempt, ID: a.LeaseID}, offset, []byte(data), "", nil); err != nil {
				t.Fatalf("AppendLog(offset %d): %v", offset, err)
			}
		}
		// Out of order, with a retried chunk and a retry carrying other bytes:
		// the first chunk stored at an offset wins.
		appendLog(0, "hello ")
		appendLog(12, "!\n")
		appendLog(6, "world ")
		appendLog(0, "hello ")
		appendLog(6, "WORLD ")

		n, err := store.CountRows(s, "step_logs", "step_id = ?", a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if n != 3 {
			t.Errorf("step_logs holds %d chunks, want 3 (a retried offset is stored once)", n)
		}
		log, err := s.StepLog(ctx, run.ID, "a", 0)
		if err != nil {
			t.Fatalf("StepLog: %v", err)
		}
		if string(log) != "hello world !\n" {
			t.Errorf("StepLog = %q, want %q", log, "hello world !\n")
		}

		// Only the holder of the current attempt may write.
		err = s.AppendLog(ctx, server.Lease{StepID: a.ID, AgentID: "agent-2", Attempt: a.Attempt, ID: a.LeaseID}, 14, []byte("intruder"), "", nil)
		wantCode(t, "AppendLog(other agent)", err, server.ECONFLICT)
		err = s.AppendLog(ctx, server.Lease{StepID: a.ID, AgentID: a.AgentID, Attempt: a.Attempt + 1, ID: a.LeaseID}, 14, []byte("future"), "", nil)
		wantCode(t, "AppendLog(wrong attempt)", err, server.ECONFLICT)
		err = s.AppendLog(ctx, server.Lease{StepID: "no-such-step", AgentID: a.AgentID, Attempt: a.Attempt, ID: ""}, 0, []byte("x"), "", nil)
		wantCode(t, "AppendLog(unknown step)", err, server.ENOTFOUND)

		// Once the step ended, its log is closed.
		complete(t, s, a, 0, 2)
		err = s.AppendLog(ctx, server.Lease{StepID: a.ID, AgentID: a.AgentID, Attempt: a.Attempt, ID: a.LeaseID}, 14, []byte("late"), "", nil)
		wantCode(t, "AppendLog(finished step)", err, server.ECONFLICT)

		if log, err = s.StepLog(ctx, run.ID, "a", 0); err != nil || string(log) != "hello world !\n" {
			t.Errorf("StepLog after rejected writes = %q, %v; want it unchanged", log, err)
		}
		if log, err = s.StepLog(ctx, run.ID, "d", 0); err != nil || len(log) != 0 {
			t.Errorf("StepLog of a step that never ran = %q, %v; want empty", log, err)
		}
	})
}

func TestStepLogSkipsOverlappingChunks(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		run := createRun(t, s, diamond("p"))
		a := reserve(t, s, "agent-1", "a")
		// An agent that re-sends from an earlier offset after a partial upload.
		for _, c := range []struct {
			offset int64
			data   string
		}{{0, "hello"}, {3, "lo wor"}, {5, " w"}, {9, "ld\n"}} {
			if err := s.AppendLog(t.Context(), server.Lease{StepID: a.ID, AgentID: a.AgentID, Attempt: a.Attempt, ID: a.LeaseID}, c.offset, []byte(c.data), "", nil); err != nil {
				t.Fatalf("AppendLog(%d): %v", c.offset, err)
			}
		}
		log, err := s.StepLog(t.Context(), run.ID, "a", 0)
		if err != nil || string(log) != "hello world\n" {
			t.Errorf("StepLog = %q, %v; want %q", log, err, "hello world\n")
		}
	})
}

func TestCompleteStepRetryAndConflict(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		run := createRun(t, s, diamond("p"))
		a := reserve(t, s, "agent-1", "a")
		ctx := t.Context()
		zero, one := 0, 1
		res := server.StepResult{StepID: a.ID, LeaseID: a.LeaseID, AgentID: a.AgentID, Attempt: a.Attempt, ExitCode: &zero}

		// A wrong agent or attempt cannot complete a running step.
		_, err := s.CompleteStep(ctx, server.StepResult{StepID: a.ID, LeaseID: a.LeaseID, AgentID: "agent-2", Attempt: a.Attempt, ExitCode: &zero})
		wantCode(t, "CompleteStep(other agent)", err, server.ECONFLICT)
		_, err = s.CompleteStep(ctx, server.StepResult{StepID: a.ID, LeaseID: a.LeaseID, AgentID: a.AgentID, Attempt: 7, ExitCode: &zero})
		wantCode(t, "CompleteStep(wrong attempt)", err, server.ECONFLICT)
		_, err = s.CompleteStep(ctx, server.StepResult{StepID: "no-such-step", AgentID: a.AgentID, Attempt: 1, ExitCode: &zero})
		wantCode(t, "CompleteStep(unknown step)", err, server.ENOTFOUND)
		checkStates(t, s, run.ID, engine.RunRunning, map[string]engine.StepState{
			"a": engine.StepRunning, "b": engine.StepPending, "c": engine.StepPending, "d": engine.StepPending,
		})

		if ready, err := s.CompleteStep(ctx, res); err != nil || ready != 2 {
			t.Fatalf("CompleteStep = %d, %v; want 2, nil", ready, err)
		}
		finished := stepNamed(t, findRun(t, s, run.ID), "a").FinishedAt

		// The agent did not see the answer and reports again: acknowledged, no change.
		if ready, err := s.CompleteStep(ctx, res); err != nil || ready != 0 {
			t.Errorf("retried CompleteStep = %d, %v; want 0, nil", ready, err)
		}
		// A different late result must not overwrite the recorded one.
		_, err = s.CompleteStep(ctx, server.StepResult{StepID: a.ID, LeaseID: a.LeaseID, AgentID: a.AgentID, Attempt: a.Attempt, ExitCode: &one})
		wantCode(t, "CompleteStep(different exit code)", err, server.ECONFLICT)
		_, err = s.CompleteStep(ctx, server.StepResult{StepID: a.ID, LeaseID: a.LeaseID, AgentID: a.AgentID, Attempt: a.Attempt, ExitCode: &zero, Error: "killed"})
		wantCode(t, "CompleteStep(different error)", err, server.ECONFLICT)
		_, err = s.CompleteStep(ctx, server.StepResult{StepID: a.ID, LeaseID: a.LeaseID, AgentID: a.AgentID, Attempt: a.Attempt})
		wantCode(t, "CompleteStep(no exit code)", err, server.ECONFLICT)
		_, err = s.CompleteStep(ctx, server.StepResult{StepID: a.ID, LeaseID: a.LeaseID, AgentID: "agent-2", Attempt: a.Attempt, ExitCode: &zero})
		wantCode(t, "CompleteStep(same result, other agent)", err, server.ECONFLICT)

		got := checkStates(t, s, run.ID, engine.RunRunning, map[string]engine.StepState{
			"a": engine.StepSucceeded, "b": engine.StepReady, "c": engine.StepReady, "d": engine.StepPending,
		})
		a2 := stepNamed(t, got, "a")
		if a2.ExitCode == nil || *a2.ExitCode != 0 || a2.Error != "" || !a2.FinishedAt.Equal(*finished) {
			t.Errorf("step a after retries: exit %v error %q finished %v; want the first result (exit 0, finished %v)",
				a2.ExitCode, a2.Error, a2.FinishedAt, finished)
		}
	})
}

// agentKeys returns distinct fake key material; the store only compares bytes.
func agentKeys(seed byte) (signing, hpke []byte) {
	signing, hpke = make([]byte, 32), make([]byte, 32)
	for i := range signing {
		signing[i], hpke[i] = seed, seed+1
	}
	return signing, hpke
}

func createToken(t *testing.T, s *store.DB, secret string) []byte {
	t.Helper()
	hash := sha256.Sum256([]byte(secret))
	tok := &server.RegistrationToken{Hash: hash[:]}
	if err := s.CreateRegistrationToken(t.Context(), tok); err != nil {
		t.Fatalf("CreateRegistrationToken: %v", err)
	}
	if tok.ID == "" || tok.CreatedAt.IsZero() {
		t.Errorf("registration token has id %q created %v", tok.ID, tok.CreatedAt)
	}
	return hash[:]
}

func TestRegisterAgent(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		ctx := t.Context()
		hash := createToken(t, s, "brt_secret")
		id := uuid.NewString()
		sk, hk := agentKeys(1)

		bad := sha256.Sum256([]byte("brt_wrong"))
		err := s.RegisterAgent(ctx, &server.Agent{ID: id, Name: "n", SigningKey: sk, HPKEKey: hk}, bad[:])
		wantCode(t, "RegisterAgent(bad token)", err, server.EUNAUTHORIZED)
		if _, err := s.FindAgent(ctx, id); server.ErrorCode(err) != server.ENOTFOUND {
			t.Fatalf("agent exists after a refused registration (err %v)", err)
		}

		a := &server.Agent{ID: id, Name: "runner-1", Version: "1.0", SigningKey: sk, HPKEKey: hk}
		if err := s.RegisterAgent(ctx, a, hash); err != nil {
			t.Fatalf("RegisterAgent: %v", err)
		}
		if a.State != server.AgentEnabled || a.CreatedAt.IsZero() {
			t.Errorf("registered agent state %q created %v, want enabled and a time", a.State, a.CreatedAt)
		}
		created := a.CreatedAt

		// Restart: same id and keys, new name and version.
		again := &server.Agent{ID: id, Name: "runner-1b", Version: "1.1", SigningKey: sk, HPKEKey: hk}
		if err := s.RegisterAgent(ctx, again, hash); err != nil {
			t.Fatalf("RegisterAgent again with the same keys: %v", err)
		}
		got, err := s.FindAgent(ctx, id)
		if err != nil {
			t.Fatalf("FindAgent: %v", err)
		}
		if got.Name != "runner-1b" || got.Version != "1.1" || !got.CreatedAt.Equal(created) || got.State != server.AgentEnabled {
			t.Errorf("agent after re-registration = %+v, want new name/version, created %v, enabled", got, created)
		}
		if string(got.SigningKey) != string(sk) || string(got.HPKEKey) != string(hk) {
			t.Errorf("stored keys changed")
		}

		// The same id with other keys is someone else.
		otherSK, otherHK := agentKeys(9)
		for _, tc := range []struct {
			name     string
			sk, hpke []byte
		}{
			{"other signing key", otherSK, hk},
			{"other hpke key", sk, otherHK},
			{"both keys other", otherSK, otherHK},
		} {
			err := s.RegisterAgent(ctx, &server.Agent{ID: id, Name: "impostor", SigningKey: tc.sk, HPKEKey: tc.hpke}, hash)
			wantCode(t, "RegisterAgent("+tc.name+")", err, server.ECONFLICT)
		}
		if got, _ := s.FindAgent(ctx, id); got == nil || got.Name != "runner-1b" {
			t.Errorf("a refused registration changed the agent: %+v", got)
		}
		// Even a known agent needs a valid token.
		err = s.RegisterAgent(ctx, &server.Agent{ID: id, Name: "runner-1", SigningKey: sk, HPKEKey: hk}, bad[:])
		wantCode(t, "RegisterAgent(known agent, bad token)", err, server.EUNAUTHORIZED)

		_, err = s.FindAgent(ctx, uuid.NewString())
		wantCode(t, "FindAgent(unknown)", err, server.ENOTFOUND)

		second := &server.Agent{ID: uuid.NewString(), Name: "runner-2", SigningKey: otherSK, HPKEKey: otherHK}
		if err := s.RegisterAgent(ctx, second, hash); err != nil {
			t.Fatalf("RegisterAgent(second agent, same token): %v", err)
		}
		list, err := s.ListAgents(ctx)
		if err != nil {
			t.Fatalf("ListAgents: %v", err)
		}
		if len(list) != 2 || list[0].ID != id || list[1].ID != second.ID {
			t.Errorf("ListAgents = %v, want [%s %s] oldest first", agentIDs(list), id, second.ID)
		}

		seen := time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond)
		if err := s.TouchAgent(ctx, id, seen); err != nil {
			t.Fatalf("TouchAgent: %v", err)
		}
		if got, err := s.FindAgent(ctx, id); err != nil || !got.LastSeen.Equal(seen) {
			t.Errorf("last_seen after TouchAgent = %v (err %v), want %v", got.LastSeen, err, seen)
		}
	})
}

func agentIDs(as []*server.Agent) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.ID
	}
	return out
}

func TestDataSurvivesReopen(t *testing.T) {
	eachDB(t, func(t *testing.T, db testDB) {
		ctx := t.Context()
		s1 := db.Open(t)
		run := diamond("keep")
		if err := s1.CreateRun(ctx, run); err != nil {
			t.Fatalf("CreateRun: %v", err)
		}
		hash := sha256.Sum256([]byte("brt_keep"))
		if err := s1.CreateRegistrationToken(ctx, &server.RegistrationToken{Hash: hash[:]}); err != nil {
			t.Fatal(err)
		}
		sk, hk := agentKeys(3)
		agent := &server.Agent{ID: uuid.NewString(), Name: "keeper", SigningKey: sk, HPKEKey: hk}
		if err := s1.RegisterAgent(ctx, agent, hash[:]); err != nil {
			t.Fatal(err)
		}
		a := reserve(t, s1, agent.ID, "a")
		if err := s1.AppendLog(ctx, server.Lease{StepID: a.ID, AgentID: agent.ID, Attempt: a.Attempt, ID: a.LeaseID}, 0, []byte("persisted\n"), "", nil); err != nil {
			t.Fatal(err)
		}
		migrations, err := store.CountRows(s1, "schema_migrations", "1 = 1")
		if err != nil || migrations == 0 {
			t.Fatalf("schema_migrations has %d rows (err %v)", migrations, err)
		}
		if err := s1.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}

		// Reopening must skip applied migrations: re-running 0001 would fail on
		// CREATE TABLE, and would add rows to schema_migrations.
		s2 := db.Open(t)
		if n, err := store.CountRows(s2, "schema_migrations", "1 = 1"); err != nil || n != migrations {
			t.Errorf("schema_migrations has %d rows after reopen (err %v), want %d", n, err, migrations)
		}
		got := checkStates(t, s2, run.ID, engine.RunRunning, map[string]engine.StepState{
			"a": engine.StepRunning, "b": engine.StepPending, "c": engine.StepPending, "d": engine.StepPending,
		})
		if got.Project != "keep" || got.Runbook != run.Runbook || !got.CreatedAt.Equal(run.CreatedAt) {
			t.Errorf("reopened run = project %q runbook %q created %v; want keep, %q, %v", got.Project, got.Runbook, got.CreatedAt, run.Runbook, run.CreatedAt)
		}
		if ga, err := s2.FindAgent(ctx, agent.ID); err != nil || ga.Name != "keeper" || string(ga.SigningKey) != string(sk) {
			t.Errorf("reopened agent = %+v, %v", ga, err)
		}
		if log, err := s2.StepLog(ctx, run.ID, "a", 0); err != nil || string(log) != "persisted\n" {
			t.Errorf("reopened log = %q, %v", log, err)
		}
		// The registration token survives too, and the run can go on.
		if err := s2.RegisterAgent(ctx, &server.Agent{ID: agent.ID, Name: "keeper", SigningKey: sk, HPKEKey: hk}, hash[:]); err != nil {
			t.Errorf("re-registering after reopen: %v", err)
		}
		complete(t, s2, a, 0, 2)
	})
}

// The store advances only the dependents of the step that ended; skips must
// still propagate along chains and through steps reached by several paths,
// and a step whose other dependency is unfinished must wait.
func TestFailureSkipsTransitivelyAndJoinsWait(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		run := createRun(t, s, &server.Run{Project: "p", Runbook: "x", Steps: []*server.Step{
			{Name: "a", Command: "x"},
			{Name: "x", Command: "x"},
			{Name: "b", Command: "x", DependsOn: []string{"a"}},
			{Name: "c", Command: "x", DependsOn: []string{"b"}},
			{Name: "d", Command: "x", DependsOn: []string{"c", "a"}},
			{Name: "e", Command: "x", DependsOn: []string{"x"}},
			{Name: "f", Command: "x", DependsOn: []string{"e", "x"}},
		}})
		const P, R, N, S, F, K = engine.StepPending, engine.StepReady, engine.StepRunning, engine.StepSucceeded, engine.StepFailed, engine.StepSkipped
		a := reserve(t, s, "ag", "a")
		x := reserve(t, s, "ag", "x")
		complete(t, s, a, 1, 0)
		checkStates(t, s, run.ID, engine.RunRunning, map[string]engine.StepState{"a": F, "x": N, "b": K, "c": K, "d": K, "e": P, "f": P})
		complete(t, s, x, 0, 1)
		checkStates(t, s, run.ID, engine.RunRunning, map[string]engine.StepState{"a": F, "x": S, "b": K, "c": K, "d": K, "e": R, "f": P})
		e := reserve(t, s, "ag", "e")
		complete(t, s, e, 0, 1)
		f := reserve(t, s, "ag", "f")
		complete(t, s, f, 0, 0)
		checkStates(t, s, run.ID, engine.RunFailed, map[string]engine.StepState{"a": F, "x": S, "b": K, "c": K, "d": K, "e": S, "f": S})
	})
}

// A failed run resumes from its failed steps: succeeded ones keep their
// results, failed and skipped ones are decided again, attempts continue.
func TestResumeRun(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		run := createRun(t, s, diamond("p"))
		const R, S, P, F, K = engine.StepReady, engine.StepSucceeded, engine.StepPending, engine.StepFailed, engine.StepSkipped
		if _, err := s.ResumeRun(t.Context(), run.ID); server.ErrorCode(err) != server.ECONFLICT {
			t.Fatalf("resuming a pending run: %v, want ECONFLICT", err)
		}
		complete(t, s, reserve(t, s, "ag", "a"), 0, 2)
		b := reserve(t, s, "ag", "b")
		complete(t, s, b, 3, 0)
		complete(t, s, reserve(t, s, "ag", "c"), 0, 0)
		checkStates(t, s, run.ID, engine.RunFailed, map[string]engine.StepState{"a": S, "b": F, "c": S, "d": K})

		resumed, err := s.ResumeRun(t.Context(), run.ID)
		if err != nil {
			t.Fatal(err)
		}
		if resumed.State != engine.RunRunning || resumed.FinishedAt != nil {
			t.Errorf("resumed run %s finished %v, want running and open", resumed.State, resumed.FinishedAt)
		}
		checkStates(t, s, run.ID, engine.RunRunning, map[string]engine.StepState{"a": S, "b": R, "c": S, "d": P})
		b = reserve(t, s, "ag", "b")
		if b.Attempt != 2 {
			t.Errorf("resumed b is attempt %d, want 2", b.Attempt)
		}
		complete(t, s, b, 0, 1)
		complete(t, s, reserve(t, s, "ag", "d"), 0, 0)
		checkStates(t, s, run.ID, engine.RunSucceeded, map[string]engine.StepState{"a": S, "b": S, "c": S, "d": S})
		if st := stepNamed(t, findRun(t, s, run.ID), "a"); st.Attempt != 1 || len(st.Attempts) != 1 {
			t.Errorf("a was run again: %+v", st)
		}
	})
}

// A step is reserved only by an agent that has all its runs_on labels, and
// higher priority goes first.
func TestReserveMatchesLabelsAndPriority(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		hash := createToken(t, s, "tok")
		register := func(id string, seed byte, labels ...string) {
			signing, hpke := agentKeys(seed)
			a := &server.Agent{ID: id, Name: id, Labels: labels, SigningKey: signing, HPKEKey: hpke}
			if err := s.RegisterAgent(t.Context(), a, hash); err != nil {
				t.Fatal(err)
			}
		}
		cpu, gpu := "00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002"
		register(cpu, 1, "os=linux")
		register(gpu, 3, "os=linux", "gpu", "arch=amd64")
		createRun(t, s, &server.Run{Project: "p", Runbook: "x", Steps: []*server.Step{
			{Name: "train", Command: "x", RunsOn: []string{"gpu", "os=linux"}},
			{Name: "lint", Command: "x"},
			{Name: "urgent", Command: "x", Priority: 50},
		}})
		if got := reserve(t, s, cpu, "urgent"); got.Priority != 50 {
			t.Errorf("urgent priority %d", got.Priority)
		}
		reserve(t, s, cpu, "lint")
		noneFor := func(agent string) {
			t.Helper()
			if st, _, err := s.ReserveStep(t.Context(), agent, time.Minute); err != nil || st != nil {
				t.Fatalf("agent %s reserved %+v (%v); want nothing", agent, st, err)
			}
		}
		noneFor(cpu) // train needs gpu
		if got := reserve(t, s, gpu, "train"); len(got.RunsOn) != 2 {
			t.Errorf("train runs_on %v", got.RunsOn)
		}
		agents, err := s.ListAgents(t.Context())
		if err != nil || len(agents) != 2 || len(agents[1].Labels) != 3 {
			t.Errorf("agents %+v (%v): labels are stored", agents, err)
		}
	})
}

// A step with approval waits, pending with reason awaiting_approval, until a
// person approves (it becomes Ready) or rejects it (it fails, and the steps
// after it are skipped).
func TestApproval(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		const P, R, S, F = engine.StepPending, engine.StepReady, engine.StepSucceeded, engine.StepFailed
		gate := &runbook.Approval{Required: true, Message: "ship it?"}
		run := createRun(t, s, &server.Run{Project: "p", Runbook: "x", Steps: []*server.Step{
			{Name: "build", Command: "x"},
			{Name: "deploy", Command: "x", DependsOn: []string{"build"}, Approval: gate},
			{Name: "after", Command: "x", DependsOn: []string{"deploy"}},
			{Name: "gated-entry", Command: "x", Approval: gate},
		}})
		st := stepNamed(t, findRun(t, s, run.ID), "gated-entry")
		if st.State != P || st.Reason != engine.ReasonAwaitingApproval {
			t.Fatalf("gated entry step: %s %q, want pending awaiting_approval", st.State, st.Reason)
		}
		complete(t, s, reserve(t, s, "ag", "build"), 0, 0)
		run2 := checkStates(t, s, run.ID, engine.RunWaiting, map[string]engine.StepState{"build": S, "deploy": P, "after": P, "gated-entry": P})
		if r := stepNamed(t, run2, "deploy").Reason; r != engine.ReasonAwaitingApproval {
			t.Fatalf("deploy reason %q", r)
		}
		noneReady(t, s)
		if _, err := s.DecideApproval(t.Context(), run.ID, "after", true, "admin", ""); server.ErrorCode(err) != server.ECONFLICT {
			t.Errorf("approving a step that does not await approval: %v", err)
		}
		if ready, err := s.DecideApproval(t.Context(), run.ID, "deploy", true, "admin", ""); err != nil || ready != 1 {
			t.Fatalf("approve: %d, %v", ready, err)
		}
		checkStates(t, s, run.ID, engine.RunRunning, map[string]engine.StepState{"build": S, "deploy": R, "after": P, "gated-entry": P})
		complete(t, s, reserve(t, s, "ag", "deploy"), 0, 1)
		complete(t, s, reserve(t, s, "ag", "after"), 0, 0)
		if _, err := s.DecideApproval(t.Context(), run.ID, "gated-entry", false, "admin", ""); err != nil {
			t.Fatal(err)
		}
		run3 := checkStates(t, s, run.ID, engine.RunFailed, map[string]engine.StepState{"build": S, "deploy": S, "after": S, "gated-entry": F})
		if st := stepNamed(t, run3, "gated-entry"); st.Reason != engine.ReasonRejected || !strings.Contains(st.Error, "admin") {
			t.Errorf("rejected step: %+v", st)
		}
	})
}

// A token spends a use per new agent; restarts of known agents are let in
// whatever became of the token; revoked, expired and used-up tokens refuse
// new agents.
func TestRegistrationTokenLifecycle(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		ctx := t.Context()
		newToken := func(secret string, tok server.RegistrationToken) ([]byte, string) {
			t.Helper()
			hash := sha256.Sum256([]byte(secret))
			tok.Hash = hash[:]
			if err := s.CreateRegistrationToken(ctx, &tok); err != nil {
				t.Fatal(err)
			}
			return hash[:], tok.ID
		}
		register := func(hash []byte, id string, seed byte) error {
			signing, hpke := agentKeys(seed)
			return s.RegisterAgent(ctx, &server.Agent{ID: id, Name: id, SigningKey: signing, HPKEKey: hpke}, hash)
		}
		a1, a2 := "00000000-0000-4000-8000-00000000000a", "00000000-0000-4000-8000-00000000000b"
		once, onceID := newToken("once", server.RegistrationToken{MaxUses: 1, Description: "one agent"})
		if err := register(once, a1, 1); err != nil {
			t.Fatal(err)
		}
		wantCode(t, "second agent on a one-use token", register(once, a2, 3), server.EUNAUTHORIZED)
		if err := register(once, a1, 1); err != nil {
			t.Errorf("restart of the agent that used the token: %v", err)
		}
		past := time.Now().Add(-time.Hour)
		expired, _ := newToken("expired", server.RegistrationToken{ExpiresAt: &past})
		wantCode(t, "new agent on an expired token", register(expired, a2, 3), server.EUNAUTHORIZED)
		open, openID := newToken("open", server.RegistrationToken{})
		if err := s.RevokeRegistrationToken(ctx, openID); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeRegistrationToken(ctx, openID); err != nil {
			t.Errorf("revoking twice: %v", err)
		}
		wantCode(t, "new agent on a revoked token", register(open, a2, 3), server.EUNAUTHORIZED)
		wantCode(t, "revoke unknown", s.RevokeRegistrationToken(ctx, "nope"), server.ENOTFOUND)
		tokens, err := s.ListRegistrationTokens(ctx)
		if err != nil || len(tokens) != 3 {
			t.Fatalf("tokens %v %v", tokens, err)
		}
		byID := map[string]*server.RegistrationToken{}
		for _, tk := range tokens {
			byID[tk.ID] = tk
		}
		if o := byID[onceID]; o.Uses != 1 || o.MaxUses != 1 || o.Description != "one agent" || o.RevokedAt != nil {
			t.Errorf("one-use token %+v", o)
		}
		if o := byID[openID]; o.RevokedAt == nil {
			t.Errorf("revoked token %+v", o)
		}
	})
}

// A step reserved under a lease id of the caller's is found again by its
// agent and that lease while it runs, and by nobody else.
func TestLeasedStep(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		ctx := t.Context()
		run := createRun(t, s, diamond("leased"))
		const lease = "6b0e9f5c-1111-4a6f-9d0e-000000000001"
		st, got, err := s.ReserveStepAs(ctx, "agent-1", lease, time.Minute)
		if err != nil || st == nil || st.LeaseID != lease || got.Project != "leased" {
			t.Fatalf("ReserveStepAs: %+v %+v %v", st, got, err)
		}
		found, frun, err := s.LeasedStep(ctx, "agent-1", lease)
		if err != nil || found == nil || found.ID != st.ID || frun.ID != run.ID || frun.Project != "leased" {
			t.Fatalf("LeasedStep: %+v %+v %v", found, frun, err)
		}
		for _, c := range []struct{ agent, lease string }{{"agent-2", lease}, {"agent-1", "another"}} {
			if found, _, err := s.LeasedStep(ctx, c.agent, c.lease); err != nil || found != nil {
				t.Errorf("LeasedStep(%s, %s) = %+v, %v; want none", c.agent, c.lease, found, err)
			}
		}
		zero := 0
		if _, err := s.CompleteStep(ctx, server.StepResult{StepID: st.ID, AgentID: "agent-1", Attempt: 1, LeaseID: lease, ExitCode: &zero}); err != nil {
			t.Fatal(err)
		}
		if found, _, err := s.LeasedStep(ctx, "agent-1", lease); err != nil || found != nil {
			t.Errorf("after it ended: %+v, %v; want none", found, err)
		}
	})
}

// A completion that reserves the agent's next step, repeated (its first
// answer lost), gets the same step again, not another.
func TestCompleteAndReserveRepeated(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		ctx := t.Context()
		createRun(t, s, diamond("again"))
		a := reserve(t, s, "agent-1", "a")
		zero := 0
		res := server.StepResult{StepID: a.ID, AgentID: "agent-1", Attempt: 1, LeaseID: a.LeaseID, ExitCode: &zero}
		const next = "0d5e2c1a-2222-4b6f-8d0e-000000000002"
		first, err := s.CompleteAndReserve(ctx, res, next, time.Minute)
		if err != nil || first.Next == nil || first.NextErr != nil || first.Ready != 2 || first.Next.LeaseID != next {
			t.Fatalf("first: %+v, %v", first, err)
		}
		again, err := s.CompleteAndReserve(ctx, res, next, time.Minute)
		if err != nil || again.Next == nil || again.Next.ID != first.Next.ID || again.Ready != 0 || again.NextRun.Project != "again" {
			t.Fatalf("repeated: %+v, %v; want step %s again", again, err, first.Next.ID)
		}
	})
}
