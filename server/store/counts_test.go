package store_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/server/store"
)

// CountStates counts runs, steps and agents by state, on both dialects.
func TestCountStates(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		ctx := t.Context()
		run := &server.Run{Project: "count", Runbook: "r", Steps: []*server.Step{
			{Name: "a", Command: "true"}, {Name: "b", Command: "true", DependsOn: []string{"a"}}, {Name: "c", Command: "true"}}}
		if err := s.CreateRun(ctx, run); err != nil {
			t.Fatal(err)
		}
		got, err := s.CountStates(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got.Runs["pending"] != 1 || got.Steps["ready"] != 2 || got.Steps["pending"] != 1 || len(got.Agents) != 0 {
			t.Errorf("CountStates = %+v; want 1 pending run, 2 ready and 1 pending step, no agents", got)
		}
	})
}

// BenchmarkScrapeQueries measures what one /metrics scrape asks the
// database (CountStates and Queue) with 10,000 runs of 5 independent steps
// in 20 projects (2 of each 5 steps need a label): "backlog" with every
// step ready (50,000), then "history" with all but the last 100 runs
// finished (500 ready steps). BATON_BENCH_RUNS changes the number of runs.
func BenchmarkScrapeQueries(b *testing.B) {
	runs := 10000
	if v := os.Getenv("BATON_BENCH_RUNS"); v != "" {
		fmt.Sscan(v, &runs)
	}
	s := sqliteDB(b).Open(b)
	ctx := context.Background()
	start := time.Now()
	for i := 0; i < runs; i++ {
		run := &server.Run{Project: fmt.Sprintf("p%d", i%20), Runbook: "r"}
		for j := 0; j < 5; j++ {
			st := &server.Step{Name: fmt.Sprintf("s%d", j), Command: "true"}
			if j%2 == 1 {
				st.RunsOn = []string{fmt.Sprintf("label%d", j)}
			}
			run.Steps = append(run.Steps, st)
		}
		if err := s.CreateRun(ctx, run); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("created %d runs in %s", runs, time.Since(start).Round(time.Millisecond))
	scrape := func(b *testing.B) {
		b.Run("CountStates", func(b *testing.B) {
			for b.Loop() {
				if _, err := s.CountStates(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("Queue", func(b *testing.B) {
			for b.Loop() {
				if _, err := s.Queue(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("backlog", scrape)
	if err := store.Exec(s, `UPDATE steps SET state = 'succeeded' WHERE run_id IN (SELECT id FROM runs ORDER BY id LIMIT ?)`, runs-100); err != nil {
		b.Fatal(err)
	}
	if err := store.Exec(s, `UPDATE runs SET state = 'succeeded' WHERE id IN (SELECT id FROM runs ORDER BY id LIMIT ?)`, runs-100); err != nil {
		b.Fatal(err)
	}
	b.Run("history", scrape)
}
