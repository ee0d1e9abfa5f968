package runbook

import (
	"fmt"
	"strings"

	"github.com/baton-ci/baton/shared/expr"
)

// validate checks the step graph: unique names, known dependencies, no
// self-dependency, no cycles. Steps without a name were already reported by
// the parser and are left out.
func validate(file string, rb *Runbook) Errors {
	var errs Errors
	var steps []Step
	for _, s := range rb.Steps {
		if s.Name != "" {
			steps = append(steps, s)
		}
	}
	add := func(s Step, format string, args ...any) {
		errs = append(errs, Error{File: fileOf(file, s), Pos: s.Pos, Msg: fmt.Sprintf(format, args...)})
	}
	byName := make(map[string]Step, len(steps))
	for _, s := range steps {
		if first, dup := byName[s.Name]; dup {
			add(s, "duplicate step name %q (first defined at line %d)", s.Name, first.Pos.Line)
			continue
		}
		byName[s.Name] = s
	}
	for _, s := range steps {
		seen := map[string]bool{}
		for _, d := range s.DependsOn {
			switch {
			case d == s.Name:
				add(s, "step %q depends on itself", s.Name)
			case seen[d]:
				add(s, "step %q lists dependency %q twice", s.Name, d)
			case byName[d].Name == "":
				add(s, "step %q depends on unknown step %q", s.Name, d)
			}
			seen[d] = true
		}
	}
	if len(errs) > 0 {
		return errs
	}
	if cycle := findCycle(steps); cycle != nil {
		s := byName[cycle[0]]
		add(s, "dependency cycle: %s (each step depends on the next)", strings.Join(cycle, " -> "))
		return errs
	}
	return append(errs, validateExpressions(file, rb, steps)...)
}

// validateExpressions parses every ${{ }} value and if: condition and
// checks each reference: params must be declared, steps must be ancestors,
// declared outputs must exist. Repeats (a global value seen by every step)
// are reported once.
func validateExpressions(file string, rb *Runbook, steps []Step) Errors {
	var errs Errors
	seen := map[string]bool{}
	add := func(s Step, msg string) {
		if !seen[msg] {
			seen[msg] = true
			errs = append(errs, Error{File: fileOf(file, s), Pos: s.Pos, Msg: msg})
		}
	}
	for i := range steps {
		st := &steps[i]
		ancestors := ancestorsOf(rb, st.Name)
		check := func(what string, refs [][]string) {
			for _, path := range refs {
				if msg := checkRef(rb, st, ancestors, path); msg != "" {
					add(*st, fmt.Sprintf("step %q: %s: %s", st.Name, what, msg))
				}
			}
		}
		rb.Deferred(*st).each(func(what, text string) error {
			t, err := expr.ParseTemplate(text)
			if err != nil {
				add(*st, fmt.Sprintf("step %q: %s: %v", st.Name, what, err))
				return nil
			}
			check(what, t.Refs())
			return nil
		})
		for _, name := range rb.SecretsFor(*st) {
			if _, clash := rb.EnvFor(*st)[name]; clash {
				add(*st, fmt.Sprintf("step %q sets %s both in env and in secrets: keep one", st.Name, name))
			}
		}
		if st.If != "" && st.Cleanup {
			add(*st, fmt.Sprintf("step %q has both if and cleanup: cleanup: true means if: always(); keep one", st.Name))
		}
		if cond := st.Condition(); cond != "" {
			e, err := expr.ParseCondition(cond)
			if err != nil {
				add(*st, fmt.Sprintf("step %q: if: %v", st.Name, err))
				continue
			}
			check("if", e.Refs())
		}
	}
	return errs
}

// fileOf is the file a step was written in.
func fileOf(root string, s Step) string {
	if s.Pos.File != "" {
		return s.Pos.File
	}
	return root
}

// findCycle returns one cycle as a path that starts and ends on the same step,
// each step depending on the next (a -> b -> a), or nil. Steps are visited in source order so the answer is
// stable.
func findCycle(steps []Step) []string {
	deps := make(map[string][]string, len(steps))
	for _, s := range steps {
		deps[s.Name] = s.DependsOn
	}
	index := make(map[string]int, len(steps))
	for i, s := range steps {
		index[s.Name] = i
	}
	const (
		unvisited = iota
		onStack
		done
	)
	mark := make(map[string]int, len(steps))
	var stack []string
	var visit func(n string) []string
	visit = func(n string) []string {
		mark[n] = onStack
		stack = append(stack, n)
		for _, d := range deps[n] {
			switch mark[d] {
			case onStack:
				start := 0
				for i, s := range stack {
					if s == d {
						start = i
					}
				}
				// Rotate so the path starts at the step declared first.
				path := append([]string{}, stack[start:]...)
				first := 0
				for i, name := range path {
					if index[name] < index[path[first]] {
						first = i
					}
				}
				path = append(path[first:], path[:first]...)
				return append(path, path[0])
			case unvisited:
				if c := visit(d); c != nil {
					return c
				}
			}
		}
		stack = stack[:len(stack)-1]
		mark[n] = done
		return nil
	}
	for _, s := range steps {
		if mark[s.Name] == unvisited {
			if c := visit(s.Name); c != nil {
				return c
			}
		}
	}
	return nil
}
