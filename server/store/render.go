package store

import (
	"encoding/json"
	"fmt"

	"gorm.io/gorm"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/shared/engine"
	"github.com/baton-ci/baton/shared/runbook"
)

// runFacts is what expressions see of the run itself. It is read from the
// database the first time a step needs it (get): most steps have no
// condition and nothing to render, and a run row carries its whole runbook.
type runFacts struct {
	ID, Name, Project string
	Params            map[string]any
	// Cancelled: the run was cancelled; status conditions see cancelled().
	Cancelled bool

	load   func() (*server.Run, error)
	loaded bool
}

// lazyRunFacts returns the facts of the run, read on first use.
func (s *DB) lazyRunFacts(tx *gorm.DB, runID string) *runFacts {
	return &runFacts{load: func() (*server.Run, error) { return s.findRun(tx, runID) }}
}

// get reads the facts if they have not been read yet.
func (f *runFacts) get() (*runFacts, error) {
	if f.loaded {
		return f, nil
	}
	run, err := f.load()
	if err != nil {
		return nil, err
	}
	f.ID, f.Name, f.Project, f.Params, f.Cancelled = run.ID, run.Name, run.Project, run.Params, run.CancelRequested
	f.loaded = true
	return f, nil
}

// pendingStep is a step the engine is deciding, with lazy access to the
// facts its expressions read.
type pendingStep struct {
	tx   *gorm.DB
	db   *DB
	step *server.Step
}

// awaitsApproval reports whether the step needs a person's approval before
// it may run and has not had it.
func (p *pendingStep) awaitsApproval() bool {
	return p.step.Approval != nil && p.step.Approval.Required && p.step.Reason != engine.ReasonApproved
}

func (p *pendingStep) deferred() runbook.Deferred {
	return runbook.Deferred{Image: p.step.Image, Command: p.step.Command, Args: p.step.Args, Env: p.step.Env}
}

// scope returns a function that builds the step's expression scope, loading
// the states and outputs of the steps it references.
func (p *pendingStep) scope(facts *runFacts) func() (*runbook.Scope, error) {
	return func() (*runbook.Scope, error) {
		refs, err := p.deferred().Refs()
		if err != nil {
			return nil, err
		}
		if p.step.If != "" {
			condRefs, err := runbook.ConditionRefs(p.step.If)
			if err != nil {
				return nil, err
			}
			refs = append(refs, condRefs...)
		}
		facts, err := facts.get()
		if err != nil {
			return nil, err
		}
		scope := &runbook.Scope{Params: facts.Params, RunID: facts.ID, RunName: facts.Name, Project: facts.Project,
			Steps: map[string]runbook.StepFacts{}}
		names := runbook.StepNames(refs)
		if len(names) == 0 {
			return scope, nil
		}
		var rows []struct {
			Name    string
			State   string
			Outputs string
		}
		if err := p.tx.Raw(`SELECT name, state, outputs FROM steps WHERE run_id = ? AND name IN ?`, p.step.RunID, names).
			Scan(&rows).Error; err != nil {
			return nil, fmt.Errorf("facts of steps %v: %w", names, err)
		}
		for _, r := range rows {
			f := runbook.StepFacts{State: engine.StepState(r.State)}
			if err := json.Unmarshal([]byte(r.Outputs), &f.Outputs); err != nil {
				return nil, fmt.Errorf("outputs of step %s: %w", r.Name, err)
			}
			scope.Steps[r.Name] = f
		}
		return scope, nil
	}
}

// render resolves the step's ${{ }} values; it returns the column updates.
func (p *pendingStep) render(facts *runFacts) (map[string]any, error) {
	d := p.deferred()
	if refs, err := d.Refs(); err == nil && len(refs) == 0 {
		return nil, nil // nothing deferred: leave the row as it is
	}
	scope, err := p.scope(facts)()
	if err != nil {
		return nil, err
	}
	out, err := d.Render(scope)
	if err != nil {
		return nil, err
	}
	step := *p.step
	step.Image, step.Command, step.Args, step.Env = out.Image, out.Command, out.Args, out.Env
	row, err := stepRowOf(&step)
	if err != nil {
		return nil, err
	}
	return map[string]any{"image": row.Image, "command": row.Command, "args": row.Args, "env": row.Env}, nil
}
