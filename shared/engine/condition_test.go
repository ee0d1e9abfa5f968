package engine_test

import (
	"errors"
	"testing"

	"github.com/baton-ci/baton/shared/engine"
)

func always() *engine.Condition {
	return &engine.Condition{AsksStatus: true, Eval: func(engine.Status) (bool, error) { return true, nil }}
}

func onFailure() *engine.Condition {
	return &engine.Condition{AsksStatus: true, Eval: func(s engine.Status) (bool, error) { return s.DependencyFailed, nil }}
}

func constant(v bool) *engine.Condition {
	return &engine.Condition{Eval: func(engine.Status) (bool, error) { return v, nil }}
}

func TestConditions(t *testing.T) {
	t.Parallel()
	const (
		P = engine.StepPending
		N = engine.StepRunning
		S = engine.StepSucceeded
		F = engine.StepFailed
		K = engine.StepSkipped
		R = engine.StepReady
	)
	boom := errors.New("boom")
	cases := []struct {
		name     string
		nodes    []engine.Node
		states   map[string]engine.StepState
		upstream map[string]bool
		want     map[string]engine.StepState
	}{
		{"always() runs after a failure",
			[]engine.Node{{Name: "a"}, {Name: "c", DependsOn: []string{"a"}, If: always()}},
			map[string]engine.StepState{"a": F, "c": P}, nil, map[string]engine.StepState{"c": R}},
		{"a condition waits for every dependency to end",
			[]engine.Node{{Name: "a"}, {Name: "b"}, {Name: "c", DependsOn: []string{"a", "b"}, If: always()}},
			map[string]engine.StepState{"a": F, "b": N, "c": P}, nil, map[string]engine.StepState{}},
		{"failure() is false when everything succeeded",
			[]engine.Node{{Name: "a"}, {Name: "h", DependsOn: []string{"a"}, If: onFailure()}},
			map[string]engine.StepState{"a": S, "h": P}, nil, map[string]engine.StepState{"h": K}},
		{"failure() sees a failure further up through a skipped step",
			[]engine.Node{{Name: "a"}, {Name: "b", DependsOn: []string{"a"}}, {Name: "h", DependsOn: []string{"b"}, If: onFailure()}},
			map[string]engine.StepState{"a": F, "b": P, "h": P}, nil, map[string]engine.StepState{"b": K, "h": R}},
		{"failure() ignores a step skipped by its own condition",
			[]engine.Node{{Name: "b"}, {Name: "h", DependsOn: []string{"b"}, If: onFailure()}},
			map[string]engine.StepState{"b": K, "h": P}, map[string]bool{"b": false}, map[string]engine.StepState{"h": K}},
		{"failure() sees a failure through a step skipped by a false status condition",
			[]engine.Node{{Name: "a"}, {Name: "b", DependsOn: []string{"a"}, If: &engine.Condition{AsksStatus: true, Eval: func(s engine.Status) (bool, error) { return s.Succeeded, nil }}}, {Name: "h", DependsOn: []string{"b"}, If: onFailure()}},
			map[string]engine.StepState{"a": F, "b": P, "h": P}, nil, map[string]engine.StepState{"b": K, "h": R}},
		{"a condition without status functions needs every dependency to succeed",
			[]engine.Node{{Name: "a"}, {Name: "c", DependsOn: []string{"a"}, If: constant(true)}},
			map[string]engine.StepState{"a": F, "c": P}, nil, map[string]engine.StepState{"c": K}},
		{"a false condition skips, and its dependents follow",
			[]engine.Node{{Name: "a"}, {Name: "c", DependsOn: []string{"a"}, If: constant(false)}, {Name: "d", DependsOn: []string{"c"}}},
			map[string]engine.StepState{"a": S, "c": P, "d": P}, nil, map[string]engine.StepState{"c": K, "d": K}},
		{"an entry step with a false condition is skipped",
			[]engine.Node{{Name: "a", If: constant(false)}},
			map[string]engine.StepState{"a": P}, nil, map[string]engine.StepState{"a": K}},
		{"a condition that cannot be evaluated fails the step",
			[]engine.Node{{Name: "a", If: &engine.Condition{Eval: func(engine.Status) (bool, error) { return false, boom }}}},
			map[string]engine.StepState{"a": P}, nil, map[string]engine.StepState{"a": F}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := map[string]engine.StepState{}
			for _, ch := range engine.AdvanceFrom(c.nodes, c.states, c.upstream) {
				got[ch.Step] = ch.To
				if ch.To == F && !errors.Is(ch.Err, boom) {
					t.Errorf("failed change without the evaluation error: %+v", ch)
				}
			}
			if len(got) != len(c.want) {
				t.Fatalf("changes %v, want %v", got, c.want)
			}
			for k, v := range c.want {
				if got[k] != v {
					t.Fatalf("changes %v, want %v", got, c.want)
				}
			}
		})
	}
}

func TestSkipCauseIsReported(t *testing.T) {
	t.Parallel()
	nodes := []engine.Node{{Name: "a"}, {Name: "b", DependsOn: []string{"a"}, If: constant(false)}, {Name: "c", DependsOn: []string{"b"}}, {Name: "d", DependsOn: []string{"a"}}}
	changes := engine.AdvanceFrom(nodes, map[string]engine.StepState{"a": engine.StepSucceeded, "b": engine.StepPending, "c": engine.StepPending, "d": engine.StepPending}, nil)
	upstream := map[string]bool{}
	for _, c := range changes {
		if c.To == engine.StepSkipped {
			upstream[c.Step] = c.UpstreamFailed
		}
	}
	if len(upstream) != 2 || upstream["b"] || upstream["c"] {
		t.Errorf("skips %v: b and c are skipped by a condition, not by a failure", upstream)
	}
	changes = engine.AdvanceFrom([]engine.Node{{Name: "a"}, {Name: "b", DependsOn: []string{"a"}}}, map[string]engine.StepState{"a": engine.StepFailed, "b": engine.StepPending}, nil)
	if len(changes) != 1 || !changes[0].UpstreamFailed {
		t.Errorf("changes %+v: b is skipped because a failed", changes)
	}
}
