package engine_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/baton-ci/baton/shared/engine"
)

// Short names keep the tables readable.
const (
	pending   = engine.StepPending
	ready     = engine.StepReady
	running   = engine.StepRunning
	succeeded = engine.StepSucceeded
	failed    = engine.StepFailed
	skipped   = engine.StepSkipped
	cancelled = engine.StepCancelled
)

func node(name string, deps ...string) engine.Node {
	return engine.Node{Name: name, DependsOn: deps}
}

func change(step string, to engine.StepState) engine.Change {
	// Without conditions, a skip is caused by a failure before the step,
	// except below a cancelled step (see the cancelled cases).
	return engine.Change{Step: step, From: pending, To: to, UpstreamFailed: to == skipped}
}

func TestAdvance(t *testing.T) {
	t.Parallel()
	diamond := []engine.Node{node("a"), node("b", "a"), node("c", "a"), node("d", "b", "c")}
	// Listed out of topological order on purpose: d depends on c, c on b, b
	// on a, and x/y is a branch of its own.
	chain := []engine.Node{node("d", "c"), node("y", "x"), node("c", "b"), node("b", "a"), node("a"), node("x")}

	tests := []struct {
		name   string
		nodes  []engine.Node
		states map[string]engine.StepState
		want   []engine.Change
	}{
		{
			name:   "empty graph",
			nodes:  nil,
			states: map[string]engine.StepState{},
			want:   nil,
		},
		{
			name:   "entry steps become ready",
			nodes:  []engine.Node{node("a"), node("b"), node("c", "a")},
			states: map[string]engine.StepState{"a": pending, "b": pending, "c": pending},
			want:   []engine.Change{change("a", ready), change("b", ready)},
		},
		{
			name:   "ready and running dependencies hold dependents back",
			nodes:  []engine.Node{node("a"), node("b"), node("c", "a"), node("d", "b")},
			states: map[string]engine.StepState{"a": ready, "b": running, "c": pending, "d": pending},
			want:   nil,
		},
		{
			name:   "diamond: only the root starts",
			nodes:  diamond,
			states: map[string]engine.StepState{"a": pending, "b": pending, "c": pending, "d": pending},
			want:   []engine.Change{change("a", ready)},
		},
		{
			name:   "diamond: root succeeded fans out",
			nodes:  diamond,
			states: map[string]engine.StepState{"a": succeeded, "b": pending, "c": pending, "d": pending},
			want:   []engine.Change{change("b", ready), change("c", ready)},
		},
		{
			name:   "diamond: join waits for every branch",
			nodes:  diamond,
			states: map[string]engine.StepState{"a": succeeded, "b": succeeded, "c": running, "d": pending},
			want:   nil,
		},
		{
			name:   "diamond: join starts when both branches succeeded",
			nodes:  diamond,
			states: map[string]engine.StepState{"a": succeeded, "b": succeeded, "c": succeeded, "d": pending},
			want:   []engine.Change{change("d", ready)},
		},
		{
			name:   "diamond: a failed branch skips the join at once",
			nodes:  diamond,
			states: map[string]engine.StepState{"a": succeeded, "b": failed, "c": running, "d": pending},
			want:   []engine.Change{change("d", skipped)},
		},
		{
			name:   "diamond: failed root skips everything below it",
			nodes:  diamond,
			states: map[string]engine.StepState{"a": failed, "b": pending, "c": pending, "d": pending},
			want:   []engine.Change{change("b", skipped), change("c", skipped), change("d", skipped)},
		},
		{
			name:   "failure skips transitively, independent branch untouched, node order kept",
			nodes:  chain,
			states: map[string]engine.StepState{"a": failed, "b": pending, "c": pending, "d": pending, "x": succeeded, "y": pending},
			want:   []engine.Change{change("d", skipped), change("y", ready), change("c", skipped), change("b", skipped)},
		},
		{
			name:   "independent running branch is not disturbed by a failure",
			nodes:  chain,
			states: map[string]engine.StepState{"a": failed, "b": pending, "c": pending, "d": pending, "x": running, "y": pending},
			want:   []engine.Change{change("d", skipped), change("c", skipped), change("b", skipped)},
		},
		{
			name:   "cancelled dependency skips",
			nodes:  []engine.Node{node("a"), node("b", "a"), node("c", "b")},
			states: map[string]engine.StepState{"a": cancelled, "b": pending, "c": pending},
			want: []engine.Change{
				{Step: "b", From: pending, To: skipped},
				{Step: "c", From: pending, To: skipped},
			},
		},
		{
			name:   "skipped dependency skips",
			nodes:  []engine.Node{node("a"), node("b", "a")},
			states: map[string]engine.StepState{"a": skipped, "b": pending},
			want:   []engine.Change{change("b", skipped)},
		},
		{
			name:   "only pending steps move",
			nodes:  []engine.Node{node("a"), node("b", "a"), node("c", "a"), node("d", "a"), node("e", "a"), node("f", "a")},
			states: map[string]engine.StepState{"a": succeeded, "b": ready, "c": running, "d": failed, "e": skipped, "f": cancelled},
			want:   nil,
		},
		{
			name:   "one failed dependency among many pending ones skips",
			nodes:  []engine.Node{node("a"), node("b"), node("c", "a", "b")},
			states: map[string]engine.StepState{"a": pending, "b": failed, "c": pending},
			want:   []engine.Change{change("a", ready), change("c", skipped)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			before := maps.Clone(tt.states)
			got := engine.Advance(tt.nodes, tt.states)
			if !maps.Equal(before, tt.states) {
				t.Fatalf("Advance modified its input: before %v, after %v", before, tt.states)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("Advance =\n  %v\nwant\n  %v", got, tt.want)
			}
			// Applying the changes must reach a fixed point.
			next := maps.Clone(tt.states)
			for _, c := range got {
				next[c.Step] = c.To
			}
			if again := engine.Advance(tt.nodes, next); len(again) != 0 {
				t.Fatalf("Advance after applying its changes = %v, want none", again)
			}
		})
	}
}

func TestRunStateOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		states []engine.StepState
		want   engine.RunState
	}{
		{"all pending", []engine.StepState{pending, pending}, engine.RunPending},
		{"ready but not started", []engine.StepState{ready, pending}, engine.RunPending},
		{"a step running", []engine.StepState{running, pending}, engine.RunRunning},
		{"a step succeeded, the next ready", []engine.StepState{succeeded, ready}, engine.RunRunning},
		{"a step succeeded, the next pending", []engine.StepState{succeeded, pending}, engine.RunRunning},
		{"failed while another runs", []engine.StepState{failed, running}, engine.RunRunning},
		{"failed while another is ready", []engine.StepState{failed, ready}, engine.RunRunning},
		{"failed while another is pending", []engine.StepState{failed, pending}, engine.RunRunning},
		{"cancelled while another runs", []engine.StepState{cancelled, running}, engine.RunRunning},
		{"skipped while another runs", []engine.StepState{skipped, running}, engine.RunRunning},
		{"all succeeded", []engine.StepState{succeeded, succeeded}, engine.RunSucceeded},
		{"skipped counts as done", []engine.StepState{succeeded, skipped}, engine.RunSucceeded},
		{"failed when all terminal", []engine.StepState{succeeded, failed, skipped}, engine.RunFailed},
		{"cancelled", []engine.StepState{succeeded, cancelled, skipped}, engine.RunCancelled},
		{"failed wins over cancelled", []engine.StepState{cancelled, failed}, engine.RunFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Every ordering of the same states gives the same answer; map
			// iteration order must not matter.
			for rot := range tt.states {
				states := map[string]engine.StepState{}
				for i, s := range tt.states {
					states[fmt.Sprintf("s%d", (i+rot)%len(tt.states))] = s
				}
				before := maps.Clone(states)
				if got := engine.RunStateOf(states); got != tt.want {
					t.Fatalf("RunStateOf(%v) = %q, want %q", states, got, tt.want)
				}
				if !maps.Equal(before, states) {
					t.Fatalf("RunStateOf modified its input")
				}
			}
			allTerminal := true
			for _, s := range tt.states {
				allTerminal = allTerminal && s.Terminal()
			}
			if tt.want.Terminal() != allTerminal {
				t.Fatalf("run state %q terminal = %v, but all steps terminal = %v", tt.want, tt.want.Terminal(), allTerminal)
			}
		})
	}
}

func TestStepStates(t *testing.T) {
	t.Parallel()
	terminal := map[engine.StepState]bool{succeeded: true, failed: true, skipped: true, cancelled: true}
	for _, s := range engine.StepStates() {
		if !s.Valid() {
			t.Errorf("%q.Valid() = false", s)
		}
		if s.Terminal() != terminal[s] {
			t.Errorf("%q.Terminal() = %v, want %v", s, s.Terminal(), terminal[s])
		}
	}
	for _, s := range []engine.StepState{"", "done", "Pending"} {
		if s.Valid() {
			t.Errorf("%q.Valid() = true", s)
		}
	}
}

// randomDAG returns 1–25 nodes. Edges only point from a node to one created
// before it, so the graph is acyclic; the slice is then shuffled so node order
// is unrelated to dependency order.
func randomDAG(rng *rand.Rand) []engine.Node {
	n := 1 + rng.IntN(25)
	names := rng.Perm(n)
	density := []float64{0, 0.1, 0.3, 0.6}[rng.IntN(4)]
	nodes := make([]engine.Node, n)
	for i := range nodes {
		nodes[i].Name = fmt.Sprintf("s%02d", names[i])
		for j := range i {
			if rng.Float64() < density {
				nodes[i].DependsOn = append(nodes[i].DependsOn, nodes[j].Name)
			}
		}
		rng.Shuffle(len(nodes[i].DependsOn), func(a, b int) {
			nodes[i].DependsOn[a], nodes[i].DependsOn[b] = nodes[i].DependsOn[b], nodes[i].DependsOn[a]
		})
	}
	rng.Shuffle(n, func(a, b int) { nodes[a], nodes[b] = nodes[b], nodes[a] })
	return nodes
}

type simStats struct{ ran, failed, skipped int }

// simulate drives one run of nodes to the end the way the server and agents
// do: ask Advance, persist its changes, then either start a random Ready step
// or finish a random Running one, failing it with probability pFail.
func simulate(rng *rand.Rand, nodes []engine.Node, pFail float64) (simStats, error) {
	var st simStats
	deps := make(map[string][]string, len(nodes))
	order := make(map[string]int, len(nodes))
	states := make(map[string]engine.StepState, len(nodes))
	for i, n := range nodes {
		deps[n.Name] = n.DependsOn
		order[n.Name] = i
		states[n.Name] = pending
	}
	started := false
	for iter := 0; ; iter++ {
		if iter > 3*len(nodes)+2 {
			return st, fmt.Errorf("no end after %d iterations: %v", iter, states)
		}
		before := maps.Clone(states)
		changes := engine.Advance(nodes, states)
		if !maps.Equal(before, states) {
			return st, fmt.Errorf("Advance modified its input")
		}
		for i, c := range changes {
			if i > 0 && order[changes[i-1].Step] >= order[c.Step] {
				return st, fmt.Errorf("changes not in node order: %v", changes)
			}
			if c.From != pending || states[c.Step] != pending {
				return st, fmt.Errorf("change %v: step is %q", c, states[c.Step])
			}
			if c.To != ready && c.To != skipped {
				return st, fmt.Errorf("change %v: want ready or skipped", c)
			}
			states[c.Step] = c.To
		}

		var readies, runnings []string
		for _, n := range nodes {
			switch states[n.Name] {
			case ready:
				readies = append(readies, n.Name)
			case running:
				runnings = append(runnings, n.Name)
			}
		}
		rs := engine.RunStateOf(states)
		if len(readies) == 0 && len(runnings) == 0 {
			break
		}
		if want := map[bool]engine.RunState{false: engine.RunPending, true: engine.RunRunning}[started]; rs != want {
			return st, fmt.Errorf("mid-run RunStateOf = %q, want %q: %v", rs, want, states)
		}

		if len(readies) > 0 && (len(runnings) == 0 || rng.IntN(2) == 0) {
			s := readies[rng.IntN(len(readies))]
			for _, d := range deps[s] {
				if states[d] != succeeded {
					return st, fmt.Errorf("step %s started while its dependency %s is %q", s, d, states[d])
				}
			}
			states[s] = running
			started = true
			st.ran++
			continue
		}
		s := runnings[rng.IntN(len(runnings))]
		if rng.Float64() < pFail {
			states[s] = failed
		} else {
			states[s] = succeeded
		}
	}

	anyFailed := false
	for _, n := range nodes {
		s := states[n.Name]
		if !s.Terminal() || s == cancelled {
			return st, fmt.Errorf("step %s ended %q", n.Name, s)
		}
		depBad := false
		for _, d := range n.DependsOn {
			depBad = depBad || states[d] == failed || states[d] == skipped
		}
		if (s == skipped) != depBad {
			return st, fmt.Errorf("step %s is %q but a dependency failed or was skipped = %v", n.Name, s, depBad)
		}
		switch s {
		case failed:
			anyFailed = true
			st.failed++
		case skipped:
			st.skipped++
		}
	}
	want := engine.RunSucceeded
	if anyFailed {
		want = engine.RunFailed
	}
	if got := engine.RunStateOf(states); got != want {
		return st, fmt.Errorf("final RunStateOf = %q, want %q: %v", got, want, states)
	}
	if again := engine.Advance(nodes, states); len(again) != 0 {
		return st, fmt.Errorf("Advance on a finished run = %v, want none", again)
	}
	return st, nil
}

func TestAdvanceRandomDAGs(t *testing.T) {
	t.Parallel()
	const dags = 2500
	seeds := rand.New(rand.NewPCG(0xba70, 0xc1))
	var total simStats
	for i := range dags {
		seed := seeds.Uint64()
		rng := rand.New(rand.NewPCG(seed, 0))
		nodes := randomDAG(rng)
		pFail := []float64{0, 0.05, 0.2, 0.5}[rng.IntN(4)]
		st, err := simulate(rng, nodes, pFail)
		if err != nil {
			t.Fatalf("DAG %d (seed %#x, pFail %v): %v\nnodes: %v", i, seed, pFail, err, nodes)
		}
		total.ran += st.ran
		total.failed += st.failed
		total.skipped += st.skipped
	}
	// Guard against a generator that never exercises failure or skipping.
	if total.failed < dags/10 || total.skipped < dags/10 {
		t.Fatalf("weak coverage over %d DAGs: %+v", dags, total)
	}
	t.Logf("%d DAGs: %d steps ran, %d failed, %d skipped", dags, total.ran, total.failed, total.skipped)
}

// benchDAG is n nodes in topological order, each depending on up to three
// earlier ones.
func benchDAG(n int) []engine.Node {
	rng := rand.New(rand.NewPCG(1, 1))
	nodes := make([]engine.Node, n)
	for i := range nodes {
		nodes[i].Name = fmt.Sprintf("step-%04d", i)
		for range min(i, rng.IntN(4)) {
			d := nodes[rng.IntN(i)].Name
			if !slices.Contains(nodes[i].DependsOn, d) {
				nodes[i].DependsOn = append(nodes[i].DependsOn, d)
			}
		}
	}
	return nodes
}

func BenchmarkAdvance(b *testing.B) {
	const n = 1000
	nodes := benchDAG(n)
	reversed := slices.Clone(nodes)
	slices.Reverse(reversed)
	allPending := func() map[string]engine.StepState {
		m := make(map[string]engine.StepState, n)
		for _, nd := range nodes {
			m[nd.Name] = pending
		}
		return m
	}
	start := allPending()
	half := allPending()
	for _, nd := range nodes[:n/2] {
		half[nd.Name] = succeeded
	}
	cascade := allPending()
	cascade[nodes[0].Name] = failed
	for _, nd := range nodes {
		if len(nd.DependsOn) == 0 && nd.Name != nodes[0].Name {
			cascade[nd.Name] = succeeded
		}
	}
	cases := []struct {
		name   string
		nodes  []engine.Node
		states map[string]engine.StepState
	}{
		{"start", nodes, start},
		{"half-done", nodes, half},
		{"failure-cascade", nodes, cascade},
		{"failure-cascade-reverse-order", reversed, cascade},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			var changes int
			for b.Loop() {
				changes = len(engine.Advance(c.nodes, c.states))
			}
			b.ReportMetric(float64(changes), "changes/op")
		})
	}
}
