package engine_test

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/baton-ci/baton/shared/engine"
)

// condKind is the kind of `if` a generated step carries.
type condKind int

const (
	condNone        condKind = iota // no if: runs only when every dependency succeeded
	condAlways                      // always()
	condFailure                     // failure()
	condSuccess                     // success()
	condTrue                        // a constant true, no status function
	condFalse                       // a constant false, no status function
	condError                       // cannot be evaluated, no status function
	condErrorStatus                 // cannot be evaluated, calls a status function
)

func (k condKind) String() string {
	return [...]string{"none", "always()", "failure()", "success()", "true", "false", "error", "error(status)"}[k]
}

func (k condKind) asksStatus() bool {
	switch k {
	case condAlways, condFailure, condSuccess, condErrorStatus:
		return true
	}
	return false
}

// decide is what a condition of kind k says for status s; it is the
// condition's definition, shared by the Eval given to the engine and by the
// oracle below. errCondition means the condition cannot be evaluated.
func (k condKind) decide(s engine.Status) (bool, error) {
	switch k {
	case condAlways, condTrue:
		return true, nil
	case condFailure:
		return s.DependencyFailed, nil
	case condSuccess:
		return !s.DependencyFailed && !s.Cancelled, nil
	case condFalse:
		return false, nil
	case condError, condErrorStatus:
		return false, errCondition
	}
	panic("decide: no condition")
}

var errCondition = errors.New("condition cannot be evaluated")

// evalCall is one call of a step's Eval.
type evalCall struct {
	step   string
	status engine.Status
}

// propDAG is a random DAG with a condition kind per step. Its Evals record
// every call in calls while recording is on.
type propDAG struct {
	nodes     []engine.Node
	kind      map[string]condKind
	deps      map[string][]string
	order     map[string]int // index in nodes
	topo      []string       // dependencies first
	recording bool
	calls     []evalCall
}

// randomPropDAG returns 1–15 nodes, edges only to nodes created before, node
// order shuffled. About half the steps get a condition.
func randomPropDAG(rng *rand.Rand) *propDAG {
	n := 1 + rng.IntN(15)
	names := rng.Perm(n)
	density := []float64{0, 0.15, 0.3, 0.6}[rng.IntN(4)]
	pCond := []float64{0, 0.3, 0.5, 0.8}[rng.IntN(4)]
	g := &propDAG{kind: map[string]condKind{}, deps: map[string][]string{}, order: map[string]int{}}
	g.nodes = make([]engine.Node, n)
	for i := range g.nodes {
		nd := &g.nodes[i]
		nd.Name = fmt.Sprintf("s%02d", names[i])
		for j := range i {
			if rng.Float64() < density {
				nd.DependsOn = append(nd.DependsOn, g.nodes[j].Name)
			}
		}
		rng.Shuffle(len(nd.DependsOn), func(a, b int) {
			nd.DependsOn[a], nd.DependsOn[b] = nd.DependsOn[b], nd.DependsOn[a]
		})
		k := condNone
		if rng.Float64() < pCond {
			k = condKind(1 + rng.IntN(int(condErrorStatus)))
		}
		g.kind[nd.Name] = k
		g.deps[nd.Name] = nd.DependsOn
		g.topo = append(g.topo, nd.Name)
		if k != condNone {
			name := nd.Name
			nd.If = &engine.Condition{AsksStatus: k.asksStatus(), Eval: func(s engine.Status) (bool, error) {
				if g.recording {
					g.calls = append(g.calls, evalCall{name, s})
				}
				ok, err := k.decide(s)
				if err != nil {
					return false, fmt.Errorf("step %s: %w", name, err)
				}
				return ok, nil
			}}
		}
	}
	rng.Shuffle(n, func(a, b int) { g.nodes[a], g.nodes[b] = g.nodes[b], g.nodes[a] })
	for i, nd := range g.nodes {
		g.order[nd.Name] = i
	}
	return g
}

func (g *propDAG) String() string {
	var b strings.Builder
	for _, n := range g.nodes {
		fmt.Fprintf(&b, "\n  %s needs %v if %v", n.Name, n.DependsOn, g.kind[n.Name])
	}
	return b.String()
}

// outcome is how a step ended, as the oracle sees it.
type outcome int

const (
	outRan     outcome = iota // became ready, then ran (succeeded or failed at random)
	outSkipped                // skipped
	outEvalErr                // failed because its condition could not be evaluated
)

func (o outcome) String() string { return [...]string{"ran", "skipped", "eval error"}[o] }

// propRun is the persisted state of one simulated run.
type propRun struct {
	g        *propDAG
	states   map[string]engine.StepState
	upstream map[string]bool // skip cause of every skipped step, as reported
	errs     map[string]error
	ended    map[string]int // logical time a step became terminal
	ran      map[string]bool
	now      int
}

// failedBefore is the engine's DependencyFailed for one dependency, from the
// persisted state and skip cause.
func (r *propRun) failedBefore(d string) bool {
	switch r.states[d] {
	case engine.StepFailed:
		return true
	case engine.StepSkipped:
		v, known := r.upstream[d]
		return v || !known
	}
	return false
}

// status is what the condition of step s must see once all its dependencies
// ended; only dependencies that ended at or before time t count (the others
// were not terminal yet).
func (r *propRun) status(s string, t int) engine.Status {
	st := engine.Status{Succeeded: true}
	for _, d := range r.g.deps[s] {
		if !r.states[d].Terminal() || r.ended[d] > t {
			st.Succeeded = false
			continue
		}
		st.Succeeded = st.Succeeded && r.states[d] == engine.StepSucceeded
		st.DependencyFailed = st.DependencyFailed || r.failedBefore(d)
	}
	return st
}

// expect is the oracle: how step s must end, given how its dependencies ended
// and, for a skip, whether it was caused by a failure before it. Dependencies
// that ended after time t are not counted for the skip cause: a step without
// a condition is skipped as soon as one dependency ended without success, and
// its cause is fixed then.
func (r *propRun) expect(s string, t int) (outcome, bool) {
	allSucceeded := true
	for _, d := range r.g.deps[s] {
		allSucceeded = allSucceeded && r.states[d] == engine.StepSucceeded
	}
	st := r.status(s, t)
	k := r.g.kind[s]
	if k == condNone || (!k.asksStatus() && !allSucceeded) {
		if allSucceeded {
			return outRan, false
		}
		return outSkipped, st.DependencyFailed
	}
	ok, err := k.decide(st)
	switch {
	case err != nil:
		return outEvalErr, false
	case ok:
		return outRan, false
	default:
		return outSkipped, st.DependencyFailed
	}
}

// decidable reports whether the engine must have moved pending step s by now.
func (r *propRun) decidable(s string) bool {
	allEnded, allSucceeded, oneFailed := true, true, false
	for _, d := range r.g.deps[s] {
		st := r.states[d]
		allEnded = allEnded && st.Terminal()
		allSucceeded = allSucceeded && st == engine.StepSucceeded
		oneFailed = oneFailed || r.failedBefore(d)
	}
	if r.g.kind[s] == condNone {
		return allSucceeded || oneFailed || allEnded
	}
	return allEnded
}

type propStats struct {
	steps, ran, failed, evalErrs, skips, upstreamSkips, conditioned, lateSkipCause int
}

// advance asks the engine for its changes, checks them, and persists them.
func (r *propRun) advance() error {
	g := r.g
	r.now++
	before, beforeUp := maps.Clone(r.states), maps.Clone(r.upstream)
	g.recording, g.calls = true, nil
	changes := engine.AdvanceFrom(g.nodes, r.states, r.upstream)
	g.recording = false
	calls := g.calls
	if !maps.Equal(before, r.states) || !maps.Equal(beforeUp, r.upstream) {
		return fmt.Errorf("AdvanceFrom modified its input")
	}

	seen := map[string]bool{}
	for i, c := range changes {
		if _, ok := g.kind[c.Step]; !ok {
			return fmt.Errorf("change %+v: no such step", c)
		}
		if seen[c.Step] {
			return fmt.Errorf("step %s changed twice in one call: %+v", c.Step, changes)
		}
		seen[c.Step] = true
		if i > 0 && g.order[changes[i-1].Step] >= g.order[c.Step] {
			return fmt.Errorf("changes not in node order: %+v", changes)
		}
		if c.From != engine.StepPending || r.states[c.Step] != engine.StepPending {
			return fmt.Errorf("change %+v: step is %q", c, r.states[c.Step])
		}
		switch c.To {
		case engine.StepReady, engine.StepSkipped:
			if c.Err != nil {
				return fmt.Errorf("change %+v: error without failure", c)
			}
		case engine.StepFailed:
			if !errors.Is(c.Err, errCondition) || !strings.Contains(c.Err.Error(), c.Step) {
				return fmt.Errorf("change %+v: failed without this step's evaluation error", c)
			}
		default:
			return fmt.Errorf("change %+v: want ready, skipped or failed", c)
		}
		if c.UpstreamFailed && c.To != engine.StepSkipped {
			return fmt.Errorf("change %+v: upstream failure on a step that is not skipped", c)
		}
	}
	for _, c := range changes {
		r.states[c.Step] = c.To
		if c.To.Terminal() {
			r.ended[c.Step] = r.now
		}
		switch c.To {
		case engine.StepSkipped:
			r.upstream[c.Step] = c.UpstreamFailed
		case engine.StepFailed:
			r.errs[c.Step] = c.Err
		}
	}

	// Every change follows from the dependencies as they stand after this
	// call, and every Eval was asked exactly once, with the right status,
	// after all the step's dependencies ended.
	wantCalls := map[string]engine.Status{}
	for _, c := range changes {
		s := c.Step
		k := g.kind[s]
		for _, d := range g.deps[s] {
			st := r.states[d]
			if c.To == engine.StepReady && (k == condNone && st != engine.StepSucceeded || !st.Terminal()) {
				return fmt.Errorf("step %s (if %v) ready while its dependency %s is %q", s, k, d, st)
			}
			if k != condNone && !st.Terminal() {
				return fmt.Errorf("step %s (if %v) became %q while its dependency %s is %q", s, k, c.To, d, st)
			}
		}
		want, wantUp := r.expect(s, r.now)
		got := map[engine.StepState]outcome{engine.StepReady: outRan, engine.StepSkipped: outSkipped, engine.StepFailed: outEvalErr}[c.To]
		if got != want || c.UpstreamFailed != wantUp {
			return fmt.Errorf("step %s (if %v, deps %v): change %+v, want %v with upstream failure %v; states %v, skip causes %v",
				s, k, g.deps[s], c, want, wantUp, r.states, r.upstream)
		}
		allSucceeded := r.status(s, r.now).Succeeded
		if k != condNone && (k.asksStatus() || allSucceeded) {
			wantCalls[s] = r.status(s, r.now)
		}
	}
	gotCalls := map[string]engine.Status{}
	for _, call := range calls {
		if _, dup := gotCalls[call.step]; dup {
			return fmt.Errorf("Eval of %s called twice in one call", call.step)
		}
		gotCalls[call.step] = call.status
	}
	if !maps.Equal(gotCalls, wantCalls) {
		return fmt.Errorf("Eval calls %v, want %v; changes %+v", gotCalls, wantCalls, changes)
	}

	// Nothing is left that should have moved, and asking again changes
	// nothing.
	for _, s := range g.topo {
		if r.states[s] == engine.StepPending && r.decidable(s) {
			return fmt.Errorf("step %s (if %v, deps %v) still pending: states %v", s, g.kind[s], g.deps[s], r.states)
		}
	}
	g.recording, g.calls = true, nil
	again := engine.AdvanceFrom(g.nodes, r.states, r.upstream)
	g.recording = false
	if len(again) != 0 || len(g.calls) != 0 {
		return fmt.Errorf("AdvanceFrom right after applying its changes = %+v (Eval calls %v), want none", again, g.calls)
	}
	return nil
}

// simulateConditions drives a run of g to its end: advance, then start a
// random ready step or finish a random running one (failing it with
// probability pFail), until nothing is ready or running; then checks every
// step against the oracle.
func simulateConditions(rng *rand.Rand, g *propDAG, pFail float64) (propStats, error) {
	r := &propRun{
		g:        g,
		states:   map[string]engine.StepState{},
		upstream: map[string]bool{},
		errs:     map[string]error{},
		ended:    map[string]int{},
		ran:      map[string]bool{},
	}
	for _, s := range g.topo {
		r.states[s] = engine.StepPending
	}
	for iter := 0; ; iter++ {
		if iter > 3*len(g.nodes)+2 {
			return propStats{}, fmt.Errorf("no end after %d iterations: %v", iter, r.states)
		}
		if err := r.advance(); err != nil {
			return propStats{}, err
		}
		var readies, runnings []string
		open, started := false, false
		for _, n := range g.nodes {
			switch st := r.states[n.Name]; st {
			case engine.StepReady:
				readies = append(readies, n.Name)
			case engine.StepRunning:
				runnings = append(runnings, n.Name)
			}
			st := r.states[n.Name]
			open = open || !st.Terminal()
			started = started || (st != engine.StepPending && st != engine.StepReady)
		}
		if len(readies) == 0 && len(runnings) == 0 {
			break
		}
		if want := map[bool]engine.RunState{false: engine.RunPending, true: engine.RunRunning}[started]; !open || engine.RunStateOf(r.states) != want {
			return propStats{}, fmt.Errorf("mid-run RunStateOf = %q, want %q: %v", engine.RunStateOf(r.states), want, r.states)
		}

		r.now++
		if len(readies) > 0 && (len(runnings) == 0 || rng.IntN(2) == 0) {
			s := readies[rng.IntN(len(readies))]
			for _, d := range g.deps[s] {
				if !r.states[d].Terminal() || (g.kind[s] == condNone && r.states[d] != engine.StepSucceeded) {
					return propStats{}, fmt.Errorf("step %s (if %v) started while its dependency %s is %q", s, g.kind[s], d, r.states[d])
				}
			}
			r.states[s] = engine.StepRunning
			r.ran[s] = true
			continue
		}
		s := runnings[rng.IntN(len(runnings))]
		r.states[s] = engine.StepSucceeded
		if rng.Float64() < pFail {
			r.states[s] = engine.StepFailed
		}
		r.ended[s] = r.now
	}

	// The end: every step terminal, and each as the oracle says, in
	// topological order.
	var st propStats
	anyFailed := false
	for _, s := range g.topo {
		state := r.states[s]
		if !state.Terminal() || state == engine.StepCancelled {
			return st, fmt.Errorf("step %s ended %q: %v", s, state, r.states)
		}
		for _, d := range g.deps[s] {
			if r.ended[d] > r.ended[s] && (g.kind[s] != condNone || state != engine.StepSkipped) {
				return st, fmt.Errorf("step %s (if %v) ended %q before its dependency %s", s, g.kind[s], state, d)
			}
		}
		want, wantUp := r.expect(s, r.ended[s])
		var got outcome
		switch {
		case r.ran[s] && (state == engine.StepSucceeded || state == engine.StepFailed):
			got = outRan
		case !r.ran[s] && state == engine.StepSkipped:
			got = outSkipped
		case !r.ran[s] && state == engine.StepFailed:
			got = outEvalErr
		default:
			return st, fmt.Errorf("step %s ended %q, ran %v", s, state, r.ran[s])
		}
		if got != want || (got == outSkipped && r.upstream[s] != wantUp) {
			return st, fmt.Errorf("step %s (if %v, deps %v) ended %v (upstream failure %v), want %v (upstream failure %v); states %v, skip causes %v",
				s, g.kind[s], g.deps[s], got, r.upstream[s], want, wantUp, r.states, r.upstream)
		}
		if got == outEvalErr && !errors.Is(r.errs[s], errCondition) {
			return st, fmt.Errorf("step %s failed on its condition without the error: %v", s, r.errs[s])
		}
		// A failed step or a failed condition skips the steps without a
		// condition below it, as caused by a failure, unless another
		// dependency had them skipped before.
		if state == engine.StepFailed {
			for _, n := range g.nodes {
				if g.kind[n.Name] == condNone && slices.Contains(n.DependsOn, s) && r.ended[n.Name] >= r.ended[s] &&
					(r.states[n.Name] != engine.StepSkipped || !r.upstream[n.Name]) {
					return st, fmt.Errorf("step %s failed, but its dependent %s is %q (upstream failure %v)", s, n.Name, r.states[n.Name], r.upstream[n.Name])
				}
			}
		}
		// A skip cause fixed before a later failure upstream of it.
		if got == outSkipped && g.kind[s] == condNone && !wantUp {
			if _, late := r.expect(s, r.now); late {
				st.lateSkipCause++
			}
		}
		st.steps++
		switch {
		case got == outRan:
			st.ran++
			if state == engine.StepFailed {
				st.failed++
			}
		case got == outEvalErr:
			st.evalErrs++
		case r.upstream[s]:
			st.skips++
			st.upstreamSkips++
		default:
			st.skips++
		}
		if g.kind[s] != condNone {
			st.conditioned++
		}
		anyFailed = anyFailed || state == engine.StepFailed
	}
	want := engine.RunSucceeded
	if anyFailed {
		want = engine.RunFailed
	}
	if got := engine.RunStateOf(r.states); got != want {
		return st, fmt.Errorf("final RunStateOf = %q, want %q: %v", got, want, r.states)
	}
	return st, nil
}

// TestAdvanceConditionsRandomDAGs runs 10,000 random DAGs whose steps carry
// random conditions and checks every transition and every final state against
// an oracle written from the semantics in AdvanceFrom's documentation.
func TestAdvanceConditionsRandomDAGs(t *testing.T) {
	t.Parallel()
	const dags = 10_000
	seeds := rand.New(rand.NewPCG(0xba70, 0xc0d1))
	var total propStats
	for i := range dags {
		seed := seeds.Uint64()
		rng := rand.New(rand.NewPCG(seed, 0))
		g := randomPropDAG(rng)
		pFail := []float64{0, 0.1, 0.3, 0.6}[rng.IntN(4)]
		st, err := simulateConditions(rng, g, pFail)
		if err != nil {
			t.Fatalf("DAG %d (seed %#x, pFail %v): %v\nnodes:%v", i, seed, pFail, err, g)
		}
		total.steps += st.steps
		total.ran += st.ran
		total.failed += st.failed
		total.evalErrs += st.evalErrs
		total.skips += st.skips
		total.upstreamSkips += st.upstreamSkips
		total.conditioned += st.conditioned
		total.lateSkipCause += st.lateSkipCause
	}
	// A skip's cause must not depend on timing: a step without a condition
	// waits for all its dependencies unless a failure decides it at once.
	if total.lateSkipCause != 0 {
		t.Fatalf("%d skips recorded a cause that a later failure upstream contradicts; %+v", total.lateSkipCause, total)
	}
	// Guard against a generator that stops exercising any of the paths.
	for name, n := range map[string]int{"failed": total.failed, "eval errors": total.evalErrs,
		"skips by a failure": total.upstreamSkips, "skips by a condition": total.skips - total.upstreamSkips,
		"conditioned steps": total.conditioned} {
		if n < dags/10 {
			t.Fatalf("weak coverage over %d DAGs: %d %s; %+v", dags, n, name, total)
		}
	}
	t.Logf("%d DAGs: %+v", dags, total)
}

// TestAdvanceFromNodeOrder checks that the changes do not depend on the
// order of the nodes, and that an unknown skip cause counts as a failure:
// for random DAGs in random mid-run states, AdvanceFrom on shuffled nodes
// gives the same changes, and Advance the same as AdvanceFrom with every skip
// caused by a failure.
func TestAdvanceFromNodeOrder(t *testing.T) {
	t.Parallel()
	const dags = 5_000
	seeds := rand.New(rand.NewPCG(0xba70, 0x0dde))
	for i := range dags {
		seed := seeds.Uint64()
		rng := rand.New(rand.NewPCG(seed, 0))
		g := randomPropDAG(rng)
		// A random mid-run state: each step pending, or ended at random.
		// Only some of the steps are consistent with their dependencies;
		// AdvanceFrom only looks at the pending ones.
		states := map[string]engine.StepState{}
		causes := map[string]bool{}
		all := map[string]bool{}
		for _, s := range g.topo {
			states[s] = []engine.StepState{engine.StepPending, engine.StepPending, engine.StepPending,
				engine.StepRunning, engine.StepSucceeded, engine.StepFailed, engine.StepSkipped, engine.StepCancelled}[rng.IntN(8)]
			if states[s] == engine.StepSkipped {
				causes[s] = rng.IntN(2) == 0
				all[s] = true
			}
		}
		want := changeSet(engine.AdvanceFrom(g.nodes, states, causes))
		shuffled := slices.Clone(g.nodes)
		rng.Shuffle(len(shuffled), func(a, b int) { shuffled[a], shuffled[b] = shuffled[b], shuffled[a] })
		if got := changeSet(engine.AdvanceFrom(shuffled, states, causes)); !maps.Equal(got, want) {
			t.Fatalf("DAG %d (seed %#x): states %v, skip causes %v:\nchanges in node order     %v\nchanges in shuffled order %v\nnodes:%v",
				i, seed, states, causes, want, got, g)
		}
		if got, want := changeSet(engine.Advance(g.nodes, states)), changeSet(engine.AdvanceFrom(g.nodes, states, all)); !maps.Equal(got, want) {
			t.Fatalf("DAG %d (seed %#x): states %v: Advance = %v, AdvanceFrom with every skip caused by a failure = %v\nnodes:%v",
				i, seed, states, got, want, g)
		}
	}
}

// changeSet keys changes by step, with the error reduced to its text.
func changeSet(changes []engine.Change) map[string]string {
	m := make(map[string]string, len(changes))
	for _, c := range changes {
		m[c.Step] = fmt.Sprintf("%s->%s upstream=%v err=%v", c.From, c.To, c.UpstreamFailed, c.Err)
	}
	return m
}
