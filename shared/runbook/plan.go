package runbook

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/baton-ci/baton/shared/expr"
)

// Plan is what a run of a runbook would do, without running anything: the
// steps level by level (a step's level is one more than its deepest
// dependency's), with values resolved as far as they can be before the run.
type Plan struct {
	Name   string         `json:"name,omitempty"`
	Params map[string]any `json:"params"`
	Levels [][]PlanStep   `json:"levels"`
}

// PlanStep is one step of a Plan. Values that read other steps' results
// stay as written (${{ ... }}): they are known only when the step is
// dispatched. An empty Image means the agent's default image.
type PlanStep struct {
	Name      string            `json:"name"`
	DependsOn []string          `json:"depends_on"`
	Image     string            `json:"image,omitempty"`
	Command   string            `json:"command,omitempty"`
	Args      []string          `json:"args,omitempty"`
	Env       map[string]string `json:"env,omitempty"`
	Secrets   []string          `json:"secrets,omitempty"` // names only
	If        string            `json:"if,omitempty"`
	Timeout   time.Duration     `json:"timeout"`
	Retries   int               `json:"retries,omitempty"`
}

// Plan resolves params (see ResolveParams) and lays out the steps.
func (rb *Runbook) Plan(given map[string]any) (*Plan, error) {
	params, err := rb.ResolveParams(given)
	if err != nil {
		return nil, err
	}
	level := map[string]int{}
	var depth func(name string) int
	byName := map[string]Step{}
	for _, s := range rb.Steps {
		byName[s.Name] = s
	}
	depth = func(name string) int {
		if l, ok := level[name]; ok {
			return l
		}
		l := 0
		for _, d := range byName[name].DependsOn {
			l = max(l, depth(d)+1)
		}
		level[name] = l
		return l
	}
	scope := &Scope{Params: params, RunID: "<run id>", RunName: rb.Name, Project: "<project>"}
	plan := &Plan{Name: rb.Name, Params: params}
	for _, s := range rb.Steps {
		l := depth(s.Name)
		for len(plan.Levels) <= l {
			plan.Levels = append(plan.Levels, nil)
		}
		d := rb.Deferred(s)
		ps := PlanStep{Name: s.Name, DependsOn: s.DependsOn, Image: early(d.Image, scope), Command: early(d.Command, scope),
			Secrets: rb.SecretsFor(s), If: s.Condition(), Timeout: rb.TimeoutFor(s), Retries: s.Retry.Max}
		if ps.DependsOn == nil {
			ps.DependsOn = []string{}
		}
		for _, a := range d.Args {
			ps.Args = append(ps.Args, early(a, scope))
		}
		if len(d.Env) > 0 {
			ps.Env = make(map[string]string, len(d.Env))
			for k, v := range d.Env {
				ps.Env[k] = early(v, scope)
			}
		}
		plan.Levels[l] = append(plan.Levels[l], ps)
	}
	return plan, nil
}

// early renders a template that reads only params and run facts; one that
// reads other steps stays as written.
func early(text string, scope *Scope) string {
	t, err := expr.ParseTemplate(text)
	if err != nil || len(StepNames(t.Refs())) > 0 {
		return text
	}
	out, err := t.Render(scope)
	if err != nil {
		return text
	}
	return out
}

// Print writes the plan for a terminal.
func (p *Plan) Print(w io.Writer) {
	if p.Name != "" {
		fmt.Fprintf(w, "runbook %s\n", p.Name)
	}
	for _, k := range slices.Sorted(maps.Keys(p.Params)) {
		fmt.Fprintf(w, "param %s = %v\n", k, p.Params[k])
	}
	for i, level := range p.Levels {
		fmt.Fprintf(w, "level %d:\n", i)
		for _, s := range level {
			fmt.Fprintf(w, "  %s", s.Name)
			if len(s.DependsOn) > 0 {
				fmt.Fprintf(w, " (after %s)", strings.Join(s.DependsOn, ", "))
			}
			fmt.Fprintln(w)
			image := s.Image
			if image == "" {
				image = "(agent default)"
			}
			fmt.Fprintf(w, "    image:   %s\n", image)
			if len(s.Args) > 0 {
				fmt.Fprintf(w, "    exec:    %q\n", s.Args)
			} else {
				fmt.Fprintf(w, "    command: %s\n", strings.ReplaceAll(strings.TrimSpace(s.Command), "\n", "\n             "))
			}
			if s.If != "" {
				fmt.Fprintf(w, "    if:      %s\n", s.If)
			}
			for _, k := range slices.Sorted(maps.Keys(s.Env)) {
				fmt.Fprintf(w, "    env:     %s=%s\n", k, s.Env[k])
			}
			if len(s.Secrets) > 0 {
				fmt.Fprintf(w, "    secrets: %s (values are not shown)\n", strings.Join(s.Secrets, ", "))
			}
			fmt.Fprintf(w, "    timeout: %s", s.Timeout)
			if s.Retries > 0 {
				fmt.Fprintf(w, ", retries: %d", s.Retries)
			}
			fmt.Fprintln(w)
		}
	}
}
