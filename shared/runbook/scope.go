package runbook

import (
	"fmt"
	"sort"
	"strings"

	"github.com/baton-ci/baton/shared/engine"
	"github.com/baton-ci/baton/shared/expr"
)

// Scope is what expressions in a runbook see when a step is dispatched:
//
//	params.NAME               the run's params
//	run.id, run.name, run.project
//	steps.NAME.outputs.KEY    an output of a step this one depends on ("" if unset)
//	steps.NAME.state          that step's state: succeeded, failed, skipped, ...
type Scope struct {
	Params  map[string]any
	RunID   string
	RunName string
	Project string
	Steps   map[string]StepFacts
	// Deps is what the status functions see.
	Deps expr.Status
}

// StepFacts is what a step shows to the steps after it.
type StepFacts struct {
	State   engine.StepState
	Outputs map[string]string
}

var _ expr.Context = (*Scope)(nil)

// Lookup resolves a reference path.
func (s *Scope) Lookup(path []string) (expr.Value, error) {
	switch {
	case len(path) == 2 && path[0] == "params":
		v, ok := s.Params[path[1]]
		if !ok {
			return expr.Value{}, fmt.Errorf("no param %q", path[1])
		}
		switch v := v.(type) {
		case bool:
			return expr.BoolValue(v), nil
		case float64:
			return expr.NumberValue(v), nil
		case string:
			return expr.StringValue(v), nil
		}
		return expr.StringValue(fmt.Sprint(v)), nil
	case len(path) == 2 && path[0] == "run":
		switch path[1] {
		case "id":
			return expr.StringValue(s.RunID), nil
		case "name":
			return expr.StringValue(s.RunName), nil
		case "project":
			return expr.StringValue(s.Project), nil
		}
	case len(path) >= 3 && path[0] == "steps":
		st, ok := s.Steps[path[1]]
		if !ok {
			return expr.Value{}, fmt.Errorf("step %q is not a dependency of this step", path[1])
		}
		switch {
		case len(path) == 3 && path[2] == "state":
			return expr.StringValue(string(st.State)), nil
		case len(path) == 4 && path[2] == "outputs":
			return expr.StringValue(st.Outputs[path[3]]), nil
		}
	}
	return expr.Value{}, fmt.Errorf("unknown reference %s", strings.Join(path, "."))
}

// Status is what the status functions see.
func (s *Scope) Status() expr.Status { return s.Deps }

// checkRef validates one reference path of step st at submit time: params
// must exist, steps must be ancestors, declared outputs must be declared.
func checkRef(rb *Runbook, st *Step, ancestors map[string]bool, path []string) string {
	ref := strings.Join(path, ".")
	switch {
	case len(path) == 2 && path[0] == "params":
		for _, p := range rb.Params {
			if p.Name == path[1] {
				return ""
			}
		}
		names := make([]string, len(rb.Params))
		for i, p := range rb.Params {
			names[i] = p.Name
		}
		if s := nearest(path[1], names); s != "" {
			return fmt.Sprintf("%s: no such param (did you mean params.%s?)", ref, s)
		}
		return fmt.Sprintf("%s: no such param; declare it under params", ref)
	case len(path) == 2 && path[0] == "run" && (path[1] == "id" || path[1] == "name" || path[1] == "project"):
		return ""
	case len(path) >= 3 && path[0] == "steps":
		name := path[1]
		var dep *Step
		for i := range rb.Steps {
			if rb.Steps[i].Name == name {
				dep = &rb.Steps[i]
			}
		}
		switch {
		case dep == nil:
			return fmt.Sprintf("%s: no step %q", ref, name)
		case st == nil || !ancestors[name]:
			return fmt.Sprintf("%s: step %q must depend on %q (directly or through other steps) to use its results", ref, stepLabel(st), name)
		case len(path) == 3 && path[2] == "state":
			return ""
		case len(path) == 4 && path[2] == "outputs":
			if dep.Outputs != nil && !contains(dep.Outputs, path[3]) {
				return fmt.Sprintf("%s: step %q declares no output %q (outputs: %s)", ref, name, path[3], strings.Join(dep.Outputs, ", "))
			}
			return ""
		}
	}
	return fmt.Sprintf("unknown reference %s: use params.NAME, run.id, run.name, run.project, steps.NAME.outputs.KEY or steps.NAME.state", ref)
}

func stepLabel(st *Step) string {
	if st == nil {
		return "global"
	}
	return st.Name
}

// ancestorsOf returns every step name that name depends on, directly or not.
func ancestorsOf(rb *Runbook, name string) map[string]bool {
	deps := make(map[string][]string, len(rb.Steps))
	for _, s := range rb.Steps {
		deps[s.Name] = s.DependsOn
	}
	seen := map[string]bool{}
	var visit func(string)
	visit = func(n string) {
		for _, d := range deps[n] {
			if !seen[d] {
				seen[d] = true
				visit(d)
			}
		}
	}
	visit(name)
	return seen
}

// Deferred is the part of a step that may hold ${{ }} values, rendered
// when the step is dispatched.
type Deferred struct {
	Image   string
	Command string
	Args    []string
	Env     map[string]string
}

// each calls fn with a label and every template text of d.
func (d Deferred) each(fn func(what, text string) error) error {
	if err := fn("image", d.Image); err != nil {
		return err
	}
	if err := fn("command", d.Command); err != nil {
		return err
	}
	for i, a := range d.Args {
		if err := fn(fmt.Sprintf("command[%d]", i), a); err != nil {
			return err
		}
	}
	keys := make([]string, 0, len(d.Env))
	for k := range d.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := fn("env."+k, d.Env[k]); err != nil {
			return err
		}
	}
	return nil
}

// Refs lists every reference in d's templates.
func (d Deferred) Refs() ([][]string, error) {
	var refs [][]string
	err := d.each(func(what, text string) error {
		t, err := expr.ParseTemplate(text)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		refs = append(refs, t.Refs()...)
		return nil
	})
	return refs, err
}

// Render resolves every ${{ }} in d against scope.
func (d Deferred) Render(scope *Scope) (Deferred, error) {
	out := Deferred{Env: make(map[string]string, len(d.Env))}
	if d.Args != nil {
		out.Args = make([]string, len(d.Args))
	}
	err := d.each(func(what, text string) error {
		t, err := expr.ParseTemplate(text)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		v, err := t.Render(scope)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		switch {
		case what == "image":
			out.Image = v
		case what == "command":
			out.Command = v
		case strings.HasPrefix(what, "command["):
			var i int
			fmt.Sscanf(what, "command[%d]", &i)
			out.Args[i] = v
		default:
			out.Env[strings.TrimPrefix(what, "env.")] = v
		}
		return nil
	})
	return out, err
}

// StepNames lists the step names that refs read, sorted.
func StepNames(refs [][]string) []string {
	seen := map[string]bool{}
	for _, path := range refs {
		if len(path) >= 2 && path[0] == "steps" {
			seen[path[1]] = true
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Condition turns a step's if: text into the engine's condition, evaluated
// against the scope that facts returns when the engine asks.
func Condition(src string, facts func() (*Scope, error)) (*engine.Condition, error) {
	e, err := expr.ParseCondition(src)
	if err != nil {
		return nil, err
	}
	return &engine.Condition{AsksStatus: e.UsesStatus(), Eval: func(st engine.Status) (bool, error) {
		scope, err := facts()
		if err != nil {
			return false, err
		}
		scope.Deps = expr.Status{DependencyFailed: st.DependencyFailed, DependencyNotSucceeded: !st.Succeeded, Cancelled: st.Cancelled}
		return e.Bool(scope)
	}}, nil
}

// ConditionRefs lists the references of an if: condition.
func ConditionRefs(src string) ([][]string, error) {
	e, err := expr.ParseCondition(src)
	if err != nil {
		return nil, err
	}
	return e.Refs(), nil
}
