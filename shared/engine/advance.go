package engine

import "sort"

// Node is one step of the DAG as the engine sees it: a name, the names it
// depends on, and an optional condition. The graph is assumed valid (no
// unknown names, no cycles); the runbook package checks that before a run
// exists.
type Node struct {
	Name      string
	DependsOn []string
	// If decides whether the step runs once its dependencies have ended;
	// nil means it runs only when every dependency succeeded.
	If *Condition
}

// Condition is a step's `if`.
type Condition struct {
	// AsksStatus is true when the condition calls a status function
	// (success(), failure(), always(), cancelled()). Otherwise it is read as
	// success() && (condition): the step is skipped unless every dependency
	// succeeded, and only then is Eval asked.
	AsksStatus bool
	// Eval decides. An error fails the step (see Change.Err).
	Eval func(Status) (bool, error)
}

// Status is what a condition's status functions see.
type Status struct {
	// DependencyFailed: a dependency failed, or was skipped because a step
	// before it failed.
	DependencyFailed bool
	// Succeeded: every dependency succeeded.
	Succeeded bool
	// Cancelled: the run was cancelled.
	Cancelled bool
}

// Change is one state transition the caller must persist.
type Change struct {
	Step string
	From StepState
	To   StepState
	// UpstreamFailed marks a skip with a failure before the step (a
	// dependency failed, or was skipped with a failure before it), as opposed
	// to a skip that only a false condition caused; pass it back to
	// AdvanceFrom so failure() further down sees the failure.
	UpstreamFailed bool
	// Err is set when To is Failed because the step's condition could not
	// be evaluated.
	Err error
}

// Advance is AdvanceFrom with every skipped step counted as skipped because
// of an upstream failure.
func Advance(nodes []Node, states map[string]StepState) []Change {
	return AdvanceFrom(nodes, states, nil)
}

// AdvanceFrom returns the transitions that follow from the current states.
// A pending step without a condition becomes Ready when all its dependencies
// succeeded; it becomes Skipped as soon as one failed (or was skipped because
// of a failure), else once all have ended without all succeeding.
// A pending step with a condition waits until all its dependencies have
// ended, then becomes Ready or Skipped as the condition says (Failed if it
// cannot be evaluated). Skips propagate; steps on independent branches are
// untouched. upstreamFailed tells, for already skipped steps, whether they
// were skipped because of a failure before them (nil: all were). The input
// maps are not modified. Changes are ordered by node order.
func AdvanceFrom(nodes []Node, states map[string]StepState, upstreamFailed map[string]bool) []Change {
	cur := make(map[string]StepState, len(states))
	for k, v := range states {
		cur[k] = v
	}
	skippedOnFailure := make(map[string]bool, len(upstreamFailed))
	for k, v := range upstreamFailed {
		skippedOnFailure[k] = v
	}
	failedBefore := func(name string) bool {
		switch cur[name] {
		case StepFailed:
			return true
		case StepSkipped:
			v, known := skippedOnFailure[name]
			return v || !known
		}
		return false
	}
	order := make(map[string]int, len(nodes))
	for i, n := range nodes {
		order[n.Name] = i
	}
	// Visit every step after its dependencies, so that it sees them as they
	// end up in this call whatever the node order: the cause of a skip
	// depends on it. For a valid graph the first pass moves every step that
	// can move.
	visit := dependencyOrder(nodes, order)
	var changes []Change
	// Each pass can only move pending steps forward, so this terminates in at
	// most len(nodes) passes.
	for changed := true; changed; {
		changed = false
		for _, n := range visit {
			if cur[n.Name] != StepPending {
				continue
			}
			ended, succeeded, failed := true, true, false
			for _, d := range n.DependsOn {
				st := cur[d]
				ended = ended && st.Terminal()
				succeeded = succeeded && st == StepSucceeded
				failed = failed || failedBefore(d)
			}
			c := Change{Step: n.Name, From: StepPending}
			switch {
			case n.If == nil && succeeded:
				c.To = StepReady
			case n.If == nil && (failed || ended):
				// A failure before the step decides at once; a dependency
				// skipped by its condition decides only once all have ended,
				// so the recorded cause does not depend on timing.
				c.To, c.UpstreamFailed = StepSkipped, failed
			case n.If == nil || !ended:
				continue
			case !n.If.AsksStatus && !succeeded:
				c.To, c.UpstreamFailed = StepSkipped, failed
			default:
				ok, err := n.If.Eval(Status{DependencyFailed: failed, Succeeded: succeeded})
				switch {
				case err != nil:
					c.To, c.Err = StepFailed, err
				case ok:
					c.To = StepReady
				default:
					// A failure before the step stays visible to failure()
					// below it, whatever made this condition false.
					c.To, c.UpstreamFailed = StepSkipped, failed
				}
			}
			changes = append(changes, c)
			cur[n.Name] = c.To
			if c.To == StepSkipped {
				skippedOnFailure[n.Name] = c.UpstreamFailed
			}
			changed = true
		}
	}
	sort.SliceStable(changes, func(i, j int) bool { return order[changes[i].Step] < order[changes[j].Step] })
	return changes
}

// dependencyOrder returns nodes with each one after the dependencies it has
// among them (order maps a name to its index in nodes); a cycle, which a
// valid graph does not have, is broken anywhere.
func dependencyOrder(nodes []Node, order map[string]int) []Node {
	seen := make([]bool, len(nodes))
	out := make([]Node, 0, len(nodes))
	var visit func(i int)
	visit = func(i int) {
		if seen[i] {
			return
		}
		seen[i] = true
		for _, d := range nodes[i].DependsOn {
			if j, ok := order[d]; ok {
				visit(j)
			}
		}
		out = append(out, nodes[i])
	}
	for i := range nodes {
		visit(i)
	}
	return out
}

// RunStateOf derives the run state from its step states.
func RunStateOf(states map[string]StepState) RunState {
	counts := make(map[StepState]int, 7)
	for _, st := range states {
		counts[st]++
	}
	return RunStateFromCounts(counts)
}

// RunStateWaiting is RunStateFromCounts knowing how many pending steps
// await a person's approval: a run with such steps and nothing ready or
// running is waiting.
func RunStateWaiting(counts map[StepState]int, awaitingApproval int) RunState {
	st := RunStateFromCounts(counts)
	if awaitingApproval > 0 && !st.Terminal() && counts[StepReady]+counts[StepRunning] == 0 {
		return RunWaiting
	}
	return st
}

// RunStateFromCounts derives the run state from how many steps are in each
// state, so a store can count with one query instead of loading every step.
func RunStateFromCounts(counts map[StepState]int) RunState {
	open := counts[StepPending]+counts[StepReady]+counts[StepRunning] > 0
	started := false
	for st, n := range counts {
		if n > 0 && st != StepPending && st != StepReady {
			started = true
		}
	}
	switch {
	case open && !started:
		return RunPending
	case open:
		return RunRunning
	case counts[StepFailed] > 0:
		return RunFailed
	case counts[StepCancelled] > 0:
		return RunCancelled
	default:
		return RunSucceeded
	}
}
