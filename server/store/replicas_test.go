package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/server/store"
	"github.com/baton-ci/baton/shared/engine"
)

// Two replicas on one database, with everything that changes a run at once:
// agents reserving, uploading and reporting through either replica, an
// agent that vanishes with its steps, both replicas expiring leases, and
// runs cancelled mid-flight through either. Nothing may fail (a lost
// deadlock is retried inside the store), and at the end every run is over
// and agrees with its steps, and every step with its attempts.
func TestReplicasRaceOnOneDatabase(t *testing.T) {
	eachDB(t, func(t *testing.T, db testDB) {
		replicas := []*store.DB{db.Open(t), db.Open(t)}
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()

		const runs, width = 6, 12
		var runIDs []string
		for i := range runs {
			run := &server.Run{Project: fmt.Sprintf("p%d", i%2), Runbook: "x"}
			for j := range width {
				st := &server.Step{Name: fmt.Sprintf("s%02d", j), Command: "x"}
				if j >= width/2 {
					st.DependsOn = []string{fmt.Sprintf("s%02d", j-width/2)}
				}
				run.Steps = append(run.Steps, st)
			}
			createRun(t, replicas[i%2], run)
			runIDs = append(runIDs, run.ID)
		}

		errs := make(chan error, 100)
		report := func(err error) {
			select {
			case errs <- err:
			default:
			}
		}
		var wg sync.WaitGroup
		for w := range 6 {
			s := replicas[w%2]
			agent := fmt.Sprintf("agent-%d", w)
			wg.Go(func() {
				for ctx.Err() == nil {
					lease := time.Minute
					if w == 0 {
						lease = 200 * time.Millisecond // this agent vanishes with its steps
					}
					st, _, err := s.ReserveStep(ctx, agent, lease)
					if err != nil {
						report(fmt.Errorf("%s: ReserveStep: %w", agent, err))
						return
					}
					if st == nil {
						return
					}
					if w == 0 {
						continue
					}
					l := server.Lease{StepID: st.ID, AgentID: agent, Attempt: st.Attempt, ID: st.LeaseID}
					if err := s.AppendLog(ctx, l, 0, []byte("out\n"), "", nil); err != nil {
						report(fmt.Errorf("%s: AppendLog %s: %w", agent, st.Name, err))
						return
					}
					zero := 0
					if _, err := s.CompleteStep(ctx, server.StepResult{StepID: st.ID, AgentID: agent, Attempt: st.Attempt,
						LeaseID: st.LeaseID, ExitCode: &zero}); err != nil {
						report(fmt.Errorf("%s: CompleteStep %s: %w", agent, st.Name, err))
						return
					}
				}
			})
		}
		wg.Go(func() { // cancel every other run, through alternating replicas
			for i := 0; i < runs; i += 2 {
				if _, err := replicas[i/2%2].CancelRun(ctx, runIDs[i]); err != nil && server.ErrorCode(err) != server.ECONFLICT {
					report(fmt.Errorf("CancelRun: %w", err))
				}
			}
		})
		wg.Wait()
		// The vanished agent's steps end when both replicas expire them.
		deadline := time.Now().Add(20 * time.Second)
		for {
			var running int64
			for _, s := range replicas {
				if _, err := s.ExpireSteps(ctx); err != nil {
					t.Fatalf("ExpireSteps: %v", err)
				}
			}
			running, err := store.CountRows(replicas[0], "steps", "state = ?", engine.StepRunning)
			if err != nil {
				t.Fatal(err)
			}
			if running == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d steps still running", running)
			}
			time.Sleep(50 * time.Millisecond)
		}
		close(errs)
		for err := range errs {
			t.Error(err)
		}

		for i, id := range runIDs {
			run := findRun(t, replicas[1], id)
			if !run.State.Terminal() {
				t.Errorf("run %d is %s, want it over", i, run.State)
			}
			counts := map[engine.StepState]int{}
			for _, st := range run.Steps {
				counts[st.State]++
				if len(st.Attempts) != st.Attempt {
					t.Errorf("run %d step %s: attempt %d but %d attempts recorded", i, st.Name, st.Attempt, len(st.Attempts))
					continue
				}
				if st.Attempt > 0 {
					last := st.Attempts[st.Attempt-1]
					if last.FinishedAt == nil || last.State != st.State {
						t.Errorf("run %d step %s is %s; its last attempt is %s, finished %v", i, st.Name, st.State, last.State, last.FinishedAt)
					}
				}
			}
			want := engine.RunStateFromCounts(counts)
			if want == engine.RunFailed && run.CancelRequested {
				want = engine.RunCancelled
			}
			if run.State != want {
				t.Errorf("run %d is %s, but its steps (%v) make it %s", i, run.State, counts, want)
			}
		}
	})
}

// The global pool limit and a project's limit hold when replicas reserve
// at once: agents keep reserving (never reporting) until nothing is given.
func TestLimitsHoldAcrossReplicas(t *testing.T) {
	eachDB(t, func(t *testing.T, db testDB) {
		replicas := []*store.DB{db.Open(t), db.Open(t)}
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		if err := replicas[0].SetProjectSettings(ctx, "limited", server.ProjectSettings{MaxRunning: 2, Weight: 1}); err != nil {
			t.Fatal(err)
		}
		createRun(t, replicas[0], &server.Run{Project: "limited", Runbook: "x", Steps: independentSteps(20)})
		reserveAll := func() {
			var wg sync.WaitGroup
			for w := range 8 {
				s := replicas[w%2]
				wg.Go(func() {
					for ctx.Err() == nil {
						st, _, err := s.ReserveStep(ctx, fmt.Sprintf("agent-%d", w), time.Minute)
						if err != nil {
							t.Errorf("ReserveStep: %v", err)
						}
						if err != nil || st == nil {
							return
						}
					}
				})
			}
			wg.Wait()
		}
		running := func(where string, args ...any) int64 {
			t.Helper()
			n, err := store.CountRows(replicas[0], "steps", where, args...)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		reserveAll()
		if n := running("state = ?", engine.StepRunning); n != 2 {
			t.Errorf("%d steps of the limited project running, want its limit 2", n)
		}

		for _, s := range replicas {
			s.MaxRunning = 5
		}
		// Two new projects race for the pool (and to create themselves).
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Go(func() {
				run := &server.Run{Project: fmt.Sprintf("open%d", i%2), Runbook: "x", Steps: independentSteps(10)}
				if err := replicas[i%2].CreateRun(ctx, run); err != nil {
					t.Errorf("CreateRun: %v", err)
				}
			})
		}
		wg.Wait()
		reserveAll()
		if n := running("state = ?", engine.StepRunning); n != 5 {
			t.Errorf("%d steps running fleet-wide, want the pool limit 5", n)
		}
		if n, err := store.CountRows(replicas[0], "projects", "1 = 1"); err != nil || n != 3 {
			t.Errorf("%d projects (err %v), want 3", n, err)
		}
	})
}
