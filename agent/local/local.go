// Package local runs a whole runbook on this machine, with the same engine
// and the same Executor interface as the agent, and no server: for
// `baton-agent test` (stub mode: canned results, no containers) and
// `baton-agent run` (real containers). Approval gates pass: the person
// running it is there.
package local

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/baton-ci/baton/agent"
	"github.com/baton-ci/baton/shared/engine"
	"github.com/baton-ci/baton/shared/runbook"
)

// Runner runs runbooks locally.
type Runner struct {
	Executor agent.Executor
	// Parallel is how many steps run at once (at least 1).
	Parallel int
	// NoDelay skips retry delays (stub mode).
	NoDelay bool
	// OnChange, if set, is told every step state change, in order, with the
	// step's result so far (final once the state is terminal).
	OnChange func(step string, r *StepResult)
}

// Result is how a local run ended.
type Result struct {
	State engine.RunState
	Steps map[string]*StepResult
}

// StepResult is how one step ended.
type StepResult struct {
	State    engine.StepState
	Reason   engine.Reason
	ExitCode *int
	Error    string
	Attempts int
	Outputs  map[string]string
	Log      []byte // the last attempt's output
	Took     time.Duration
}

type done struct {
	name     string
	outcome  agent.Outcome
	err      error
	timedOut bool
	log      []byte
	took     time.Duration
}

// Run executes rb with the given params until every step has ended.
func (r *Runner) Run(ctx context.Context, rb *runbook.Runbook, given map[string]any) (*Result, error) {
	params, err := rb.ResolveParams(given)
	if err != nil {
		return nil, err
	}
	res := &Result{Steps: map[string]*StepResult{}}
	states := map[string]engine.StepState{}
	upstream := map[string]bool{}
	byName := map[string]runbook.Step{}
	for _, s := range rb.Steps {
		states[s.Name] = engine.StepPending
		res.Steps[s.Name] = &StepResult{State: engine.StepPending}
		byName[s.Name] = s
	}
	scope := func() (*runbook.Scope, error) {
		sc := &runbook.Scope{Params: params, RunID: "local", RunName: rb.Name, Project: "local", Steps: map[string]runbook.StepFacts{}}
		for name, st := range res.Steps {
			sc.Steps[name] = runbook.StepFacts{State: st.State, Outputs: st.Outputs}
		}
		return sc, nil
	}
	nodes := make([]engine.Node, len(rb.Steps))
	for i, s := range rb.Steps {
		nodes[i] = engine.Node{Name: s.Name, DependsOn: s.DependsOn}
		if cond := s.Condition(); cond != "" {
			if nodes[i].If, err = runbook.Condition(cond, scope); err != nil {
				return nil, fmt.Errorf("step %s: if: %w", s.Name, err) // Parse validated it
			}
		}
	}
	set := func(name string, st engine.StepState) {
		states[name] = st
		res.Steps[name].State = st
		if r.OnChange != nil {
			r.OnChange(name, res.Steps[name])
		}
	}
	var ready []string
	notBefore := map[string]time.Time{}
	finished := make(chan done)
	running := 0
	for {
		for _, c := range engine.AdvanceFrom(nodes, states, upstream) {
			sr := res.Steps[c.Step]
			switch c.To {
			case engine.StepSkipped:
				upstream[c.Step] = c.UpstreamFailed
				sr.Reason = engine.ReasonCondition
				if c.UpstreamFailed {
					sr.Reason = engine.ReasonUpstreamFailed
				}
			case engine.StepFailed:
				sr.Reason, sr.Error = engine.ReasonExpression, c.Err.Error()
			case engine.StepReady:
				ready = append(ready, c.Step)
			}
			set(c.Step, c.To)
		}
		for len(ready) > 0 && running < max(r.Parallel, 1) {
			name := ready[0]
			ready = ready[1:]
			step := byName[name]
			sc, _ := scope()
			d, err := rb.Deferred(step).Render(sc)
			if err != nil {
				res.Steps[name].Reason, res.Steps[name].Error = engine.ReasonExpression, err.Error()
				set(name, engine.StepFailed)
				continue
			}
			set(name, engine.StepRunning)
			res.Steps[name].Attempts++
			res.Steps[name].Outputs = nil
			running++
			spec := agent.StepSpec{RunID: "local", StepID: name, StepName: name, Attempt: res.Steps[name].Attempts,
				Image: d.Image, Command: d.Command, Args: d.Args, Env: d.Env,
				Memory: rb.ResourcesFor(step).Memory, NanoCPUs: rb.ResourcesFor(step).NanoCPUs}
			wait := time.Until(notBefore[name])
			go func() {
				if wait > 0 {
					time.Sleep(wait)
				}
				stepCtx, cancel := context.WithTimeout(ctx, rb.TimeoutFor(step))
				defer cancel()
				var log bytes.Buffer
				start := time.Now()
				out, err := r.Executor.Execute(stepCtx, spec, &log)
				timedOut := err != nil && ctx.Err() == nil && stepCtx.Err() == context.DeadlineExceeded
				finished <- done{name: name, outcome: out, err: err, timedOut: timedOut, log: log.Bytes(), took: time.Since(start)}
			}()
		}
		if running == 0 {
			break
		}
		d := <-finished
		running--
		sr := res.Steps[d.name]
		sr.Log, sr.Took, sr.Error, sr.ExitCode, sr.Reason = d.log, d.took, "", nil, ""
		switch {
		case d.timedOut:
			sr.Reason, sr.Error = engine.ReasonTimeout, fmt.Sprintf("step timed out after %s", rb.TimeoutFor(byName[d.name]))
		case d.err != nil:
			sr.Reason, sr.Error = engine.ReasonInfra, d.err.Error()
		default:
			code := d.outcome.ExitCode
			sr.ExitCode = &code
			sr.Outputs, _ = runbook.ParseOutputs(d.outcome.Outputs)
			assert := byName[d.name].Assert
			if msg := assert.Check(code, d.log); msg != "" && assert == nil {
				sr.Reason = engine.ReasonExitCode
			} else if msg != "" {
				sr.Reason, sr.Error = engine.ReasonAssert, "assert: "+msg
			}
		}
		if sr.Reason == "" {
			set(d.name, engine.StepSucceeded)
			continue
		}
		if delay, again := byName[d.name].Retry.Retries(sr.Attempts, sr.Reason); again && ctx.Err() == nil {
			if !r.NoDelay {
				notBefore[d.name] = time.Now().Add(delay)
			}
			ready = append(ready, d.name)
			set(d.name, engine.StepReady)
			continue
		}
		set(d.name, engine.StepFailed)
	}
	res.State = engine.RunStateOf(states)
	return res, nil
}
