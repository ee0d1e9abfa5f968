package engine

import "sort"

// Node is one step of the DAG as the engine sees it: a name and the names it
// depends on. The graph is assumed valid (no unknown names, no cycles); the
// runbook package checks that before a run exists.
type Node struct {
	Name      string
	DependsOn []string
}

// Change is one state transition the caller must persist.
type Change struct {
	Step string
	From StepState
	To   StepState
}

// Advance returns the transitions that follow from the current states: pending
// steps whose dependencies all succeeded become Ready; pending steps with a
// dependency that failed, was skipped or was cancelled become Skipped, and the
// skip propagates. Steps on independent branches are untouched. The input map
// is not modified. Changes are ordered by node order, so results are stable.
func Advance(nodes []Node, states map[string]StepState) []Change {
	cur := make(map[string]StepState, len(states))
	for k, v := range states {
		cur[k] = v
	}
	order := make(map[string]int, len(nodes))
	for i, n := range nodes {
		order[n.Name] = i
	}
	var changes []Change
	// Each pass can only move pending steps forward, so this terminates in at
	// most len(nodes) passes; skips propagate along chains across passes.
	for changed := true; changed; {
		changed = false
		for _, n := range nodes {
			if cur[n.Name] != StepPending {
				continue
			}
			next := StepReady
			for _, d := range n.DependsOn {
				switch cur[d] {
				case StepSucceeded:
				case StepFailed, StepSkipped, StepCancelled:
					next = StepSkipped
				default:
					if next != StepSkipped {
						next = StepPending
					}
				}
			}
			if next == StepPending {
				continue
			}
			changes = append(changes, Change{Step: n.Name, From: StepPending, To: next})
			cur[n.Name] = next
			changed = true
		}
	}
	sort.SliceStable(changes, func(i, j int) bool { return order[changes[i].Step] < order[changes[j].Step] })
	return changes
}

// RunStateOf derives the run state from its step states.
func RunStateOf(states map[string]StepState) RunState {
	counts := make(map[StepState]int, 7)
	for _, st := range states {
		counts[st]++
	}
	return RunStateFromCounts(counts)
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
