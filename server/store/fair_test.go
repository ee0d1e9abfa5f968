package store_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/server/store"
)

// steps returns n independent steps.
func independentSteps(n int) []*server.Step {
	steps := make([]*server.Step, n)
	for i := range steps {
		steps[i] = &server.Step{Name: fmt.Sprintf("s%d", i), Command: "x"}
	}
	return steps
}

// Project A enqueues 1,000 steps, then project B 10: B's first step starts
// before A's 50th further step (here: at the very next reservation), and
// then the two take turns.
func TestFairQueueAcrossProjects(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		createRun(t, s, &server.Run{Project: "A", Runbook: "x", Steps: independentSteps(1000)})
		var running []*server.Step
		for i := range 4 {
			running = append(running, reserveAny(t, s, fmt.Sprintf("ag%d", i)))
		}
		createRun(t, s, &server.Run{Project: "B", Runbook: "x", Steps: independentSteps(10)})
		projectOf := map[string]string{}
		var order []string
		for len(order) < 12 {
			done := running[0]
			running = running[1:]
			complete(t, s, done, 0, -1)
			next := reserveAny(t, s, done.AgentID)
			running = append(running, next)
			if _, ok := projectOf[next.RunID]; !ok {
				projectOf[next.RunID] = findRun(t, s, next.RunID).Project
			}
			order = append(order, projectOf[next.RunID])
		}
		if order[0] != "B" {
			t.Fatalf("after B enqueued, reservations went to %v: B waited behind A", order)
		}
		b := 0
		for _, p := range order {
			if p == "B" {
				b++
			}
		}
		if b < 5 {
			t.Errorf("B got %d of the next 12 steps (%v), want about half", b, order)
		}
	})
}

// A project's concurrency limit holds back its steps while others still
// run; without it the two would share equally.
func TestProjectLimit(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		if err := s.SetProjectSettings(t.Context(), "small", server.ProjectSettings{MaxRunning: 2, Weight: 1}); err != nil {
			t.Fatal(err)
		}
		wantCode(t, "weight 0", s.SetProjectSettings(t.Context(), "x", server.ProjectSettings{Weight: 0}), server.EINVALID)
		if got, err := s.ProjectSettings(t.Context(), "small"); err != nil || got.MaxRunning != 2 {
			t.Fatalf("ProjectSettings = %+v, %v", got, err)
		}
		if count := share(t, s, "small", "other", 8); count["small"] != 2 || count["other"] != 6 {
			t.Errorf("8 reservations went %v, want small 2 (its limit) and other 6", count)
		}
	})
}

// Weight gives a project a larger share of the fleet.
func TestProjectWeight(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		if err := s.SetProjectSettings(t.Context(), "heavy", server.ProjectSettings{Weight: 3}); err != nil {
			t.Fatal(err)
		}
		if count := share(t, s, "light", "heavy", 8); count["light"] != 2 || count["heavy"] != 6 {
			t.Errorf("8 reservations went %v, want light 2 and heavy 6 (weight 3)", count)
		}
	})
}

// share enqueues 10 steps in each project and counts where n reservations go.
func share(t *testing.T, s *store.DB, p1, p2 string, n int) map[string]int {
	t.Helper()
	createRun(t, s, &server.Run{Project: p1, Runbook: "x", Steps: independentSteps(10)})
	createRun(t, s, &server.Run{Project: p2, Runbook: "x", Steps: independentSteps(10)})
	count := map[string]int{}
	for i := range n {
		st := reserveAny(t, s, fmt.Sprintf("ag%d", i))
		count[findRun(t, s, st.RunID).Project]++
	}
	return count
}

// reserveAny reserves whatever the queue gives agentID, which must be something.
func reserveAny(t *testing.T, s *store.DB, agentID string) *server.Step {
	t.Helper()
	st, _, err := s.ReserveStep(t.Context(), agentID, time.Minute)
	if err != nil || st == nil {
		t.Fatalf("ReserveStep(%s) = %v, %v; want a step", agentID, st, err)
	}
	return st
}

// Every step that has not started says why.
func TestWhyWaiting(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		s.MaxRunning = 2
		if err := s.RegisterAgent(t.Context(), &server.Agent{ID: "linux", Name: "l", Labels: []string{"os=linux"},
			SigningKey: make([]byte, 32), HPKEKey: make([]byte, 32)}, createToken(t, s, "tok")); err != nil {
			t.Fatal(err)
		}
		if err := s.SetProjectSettings(t.Context(), "p", server.ProjectSettings{MaxRunning: 1, Weight: 1}); err != nil {
			t.Fatal(err)
		}
		run := createRun(t, s, &server.Run{Project: "p", Runbook: "x", Steps: []*server.Step{
			{Name: "first", Command: "x"},
			{Name: "gpu", Command: "x", RunsOn: []string{"gpu"}},
			{Name: "second", Command: "x"},
			{Name: "after", Command: "x", DependsOn: []string{"first", "gpu"}},
		}})
		want := map[string]string{
			"first":  "waiting for a free agent: position 1",
			"gpu":    "no enabled agent with labels gpu",
			"second": "waiting for a free agent: position 3", // behind first and gpu
			"after":  "waiting on dependencies: first, gpu",
		}
		check := func() {
			t.Helper()
			for _, st := range findRun(t, s, run.ID).Steps {
				if w, ok := want[st.Name]; ok && !strings.HasPrefix(st.Waiting, w) {
					t.Errorf("step %s waiting %q, want %q", st.Name, st.Waiting, w)
				}
			}
		}
		check()
		reserve(t, s, "linux", "first")
		delete(want, "first")
		want["second"] = "project limit: 1/1 steps running"
		check()
		if err := s.SetProjectSettings(t.Context(), "p", server.ProjectSettings{Weight: 1}); err != nil {
			t.Fatal(err)
		}
		createRun(t, s, &server.Run{Project: "q", Runbook: "x", Steps: independentSteps(2)})
		if st := reserveAny(t, s, "linux"); st.RunID == run.ID {
			t.Fatalf("reserved %s of the busy project, want project q's turn", st.Name)
		}
		want["second"] = "pool limit: 2/2 steps running"
		check()
	})
}

// The queue groups ready steps by labels (in any order), with the oldest's
// ready time and the enabled agents that could take them.
func TestQueue(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		if err := s.RegisterAgent(t.Context(), &server.Agent{ID: "gpu-box", Name: "g", Labels: []string{"gpu", "os=linux"},
			SigningKey: make([]byte, 32), HPKEKey: make([]byte, 32)}, createToken(t, s, "tok")); err != nil {
			t.Fatal(err)
		}
		before := time.Now().Add(-time.Second)
		createRun(t, s, &server.Run{Project: "p", Runbook: "x", Steps: []*server.Step{
			{Name: "a", Command: "x", RunsOn: []string{"gpu", "os=linux"}},
			{Name: "b", Command: "x", RunsOn: []string{"os=linux", "gpu"}},
			{Name: "c", Command: "x", RunsOn: []string{"tpu"}},
		}})
		lines, err := s.Queue(t.Context())
		if err != nil || len(lines) != 2 {
			t.Fatalf("Queue = %+v, %v", lines, err)
		}
		if l := lines[0]; strings.Join(l.Labels, ",") != "gpu,os=linux" || l.Ready != 2 || l.Agents != 1 || l.OldestReady.Before(before) {
			t.Errorf("gpu line %+v", l)
		}
		if l := lines[1]; strings.Join(l.Labels, ",") != "tpu" || l.Ready != 1 || l.Agents != 0 {
			t.Errorf("tpu line %+v", l)
		}
	})
}

// A project's served mark is rewritten only when it changes the order:
// the project that was served last keeps its mark (with one busy project,
// every reservation used to rewrite the same row, which reservations on
// PostgreSQL then took turns on).
func TestServedMarkRewrittenOnlyWhenItChangesOrder(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		createRun(t, s, &server.Run{Project: "A", Runbook: "x", Steps: independentSteps(3)})
		served := func(project string) int64 {
			t.Helper()
			for v := int64(0); v < 10; v++ {
				if n, err := store.CountRows(s, "projects", "name = ? AND served = ?", project, v); err != nil {
					t.Fatal(err)
				} else if n == 1 {
					return v
				}
			}
			t.Fatalf("project %s: served mark not in 0..9", project)
			return 0
		}
		reserveAny(t, s, "ag1")
		first := served("A")
		if first == 0 {
			t.Fatal("a reservation left project A's served mark at 0")
		}
		reserveAny(t, s, "ag2")
		if got := served("A"); got != first {
			t.Errorf("A was the last served, yet its mark moved %d -> %d", first, got)
		}
		createRun(t, s, &server.Run{Project: "B", Runbook: "x", Steps: independentSteps(3)})
		if st := reserveAny(t, s, "ag3"); findRun(t, s, st.RunID).Project != "B" {
			t.Fatalf("B (never served) did not go first")
		}
		if served("B") <= first {
			t.Errorf("B's mark %d is not after A's %d", served("B"), first)
		}
		// B has 1 running, A 2: B again, and its mark, the latest, stays.
		b := served("B")
		if st := reserveAny(t, s, "ag4"); findRun(t, s, st.RunID).Project != "B" {
			t.Fatalf("B (the smaller share) did not go next")
		}
		if served("B") != b {
			t.Errorf("B was the last served, yet its mark moved %d -> %d", b, served("B"))
		}
		// 2 running each: A, served longest ago, goes first and gets the latest mark.
		if st := reserveAny(t, s, "ag5"); findRun(t, s, st.RunID).Project != "A" {
			t.Fatalf("with equal shares, A (served longest ago) did not go first")
		}
		if served("A") <= b {
			t.Errorf("A's new mark %d is not after B's %d", served("A"), b)
		}
	})
}
