package store_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/server/store"
)

// BenchmarkDispatch measures the store's side of dispatch on real SQLite,
// and on PostgreSQL when BATON_TEST_POSTGRES is set: reserve a Ready step,
// complete it, advance the DAG. Each op is one step of a run of independent
// steps, so the figure is no-op steps per second the store sustains; agents
// run in parallel goroutines.
func BenchmarkDispatch(b *testing.B) {
	dialects := []struct {
		name string
		db   func(testing.TB) testDB
	}{{"sqlite", sqliteDB}}
	if os.Getenv(postgresEnv) != "" {
		dialects = append(dialects, struct {
			name string
			db   func(testing.TB) testDB
		}{"postgres", postgresDB})
	}
	for _, d := range dialects {
		for _, c := range []struct{ agents, width int }{{1, 10}, {8, 10}, {8, 1000}} {
			b.Run(fmt.Sprintf("%s/agents=%d/steps-per-run=%d", d.name, c.agents, c.width), func(b *testing.B) {
				benchDispatch(b, d.db(b).Open(b), c.agents, c.width)
			})
		}
	}
}

func benchDispatch(b *testing.B, s *store.DB, agents, width int) {
	ctx := context.Background()
	for made := 0; made < b.N; {
		run := &server.Run{Project: "bench", Runbook: "bench"}
		for i := 0; i < width && made < b.N; i++ {
			run.Steps = append(run.Steps, &server.Step{Name: fmt.Sprintf("s%d", i), Command: "true"})
			made++
		}
		if err := s.CreateRun(ctx, run); err != nil {
			b.Fatal(err)
		}
	}
	var done atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for a := 0; a < agents; a++ {
		wg.Add(1)
		go func(agent string) {
			defer wg.Done()
			zero := 0
			for {
				st, _, err := s.ReserveStep(ctx, agent, time.Minute)
				if err != nil {
					b.Error(err)
					return
				}
				if st == nil {
					return
				}
				if _, err := s.CompleteStep(ctx, server.StepResult{StepID: st.ID, LeaseID: st.LeaseID, AgentID: agent, Attempt: st.Attempt, ExitCode: &zero}); err != nil {
					b.Error(err)
					return
				}
				done.Add(1)
			}
		}(fmt.Sprintf("agent-%d", a))
	}
	wg.Wait()
	b.StopTimer()
	if done.Load() != int64(b.N) {
		b.Fatalf("%d of %d steps dispatched", done.Load(), b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "steps/s")
}
