// Package runbook is the runbook.yml model: parsing with positions, and
// validation of the step graph (unique names, known dependencies, no cycles).
package runbook

import (
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/baton-ci/baton/shared/engine"
)

// DefaultTimeout is how long a step may run when neither it nor global sets
// a timeout.
const DefaultTimeout = time.Hour

// Runbook is a parsed runbook.yml.
type Runbook struct {
	Name        string
	Description string
	// On says which events start the runbook; nil: all of them.
	On     *Triggers
	Params []Param
	Global Global
	// Includes are the runbooks grafted in; their steps are already in
	// Steps, named AS.NAME.
	Includes []Include
	Steps    []Step
}

// Include grafts another runbook of the same repository into this one.
type Include struct {
	// Path is relative to the repository root.
	Path string
	// As prefixes the included steps' names: AS.NAME.
	As string
	// After lists steps of this runbook that the included runbook's entry
	// steps depend on; empty means they start in parallel with the rest.
	After []string
	Pos   Pos
}

// Global holds defaults that apply to every step.
type Global struct {
	Env     map[string]string
	Image   string
	Timeout time.Duration
	// Labels are the default runs_on of every step.
	Labels []string
	// Secrets are project secrets every step gets as environment variables.
	Secrets []string
	// Resources are every step's default memory and CPU limits.
	Resources Resources
}

// Step is one unit of work, run in its own container.
type Step struct {
	Name string
	// Command is run with sh -c; Args, when set instead, is run as is
	// (exec form, no shell).
	Command   string
	Args      []string
	Image     string
	DependsOn []string
	Env       map[string]string
	Timeout   time.Duration
	Retry     Retry
	// If is the step's condition (an expression; "" means success()).
	If string
	// Cleanup steps run whatever happened before them: if: always().
	Cleanup bool
	// Outputs, when declared, are the only output names other steps may
	// read; nil means undeclared (any name).
	Outputs []string
	// Assert decides success instead of "exit code 0"; nil means that.
	Assert *Assert
	// RunsOn lists the labels an agent must have to run the step; nil
	// means global.labels.
	RunsOn []string
	// Priority orders Ready steps: higher first (-100 to 100, default 0).
	Priority int
	// Approval, when required, holds the step before it runs until a
	// person approves it.
	Approval *Approval
	// Secrets are names of project secrets the step gets as environment
	// variables (with global.secrets). Values never appear in the runbook.
	Secrets []string
	// Environment scopes the step's secrets: a secret set for this
	// environment of the project wins over the project-wide one.
	Environment string
	// Resources are the step's memory and CPU limits (global's otherwise).
	Resources Resources

	// Pos is where the step starts in the source.
	Pos Pos `yaml:"-"`
}

// Pos is a position in a runbook file; Line and Column start at 1. File is
// set for steps that come from an included file.
type Pos struct {
	File   string
	Line   int
	Column int
}

// Retry says how often a failed step is tried again.
type Retry struct {
	// Max is the number of retries after the first attempt (0: none).
	Max int
	// Delay is the pause before the first retry.
	Delay time.Duration
	// Exponential doubles the delay before each further retry.
	Exponential bool
	// On lists the failure reasons that are retried.
	On []engine.Reason
}

// Approval is a manual gate before a step.
type Approval struct {
	Required bool   `json:"required"`
	Message  string `json:"message,omitempty"`
}

// Assert checks a step's result beyond its exit code.
type Assert struct {
	// ExitCodes are the exit codes that count as success (default [0]).
	ExitCodes []int `json:"exit_codes,omitempty"`
	// OutputMatches is an RE2 regular expression the step's output (stdout
	// and stderr) must match.
	OutputMatches string `json:"output_matches,omitempty"`
}

// ReadsOutput says whether Check needs the step's output. A nil Assert
// does not.
func (a *Assert) ReadsOutput() bool { return a != nil && a.OutputMatches != "" }

// Check reports why a step that exited with code and printed output did not
// succeed, or "" when it did. A nil Assert means exit code 0.
func (a *Assert) Check(code int, output []byte) string {
	codes := []int{0}
	if a != nil && len(a.ExitCodes) > 0 {
		codes = a.ExitCodes
	}
	ok := false
	for _, c := range codes {
		ok = ok || c == code
	}
	if !ok {
		return fmt.Sprintf("exit code %d is not one of %v", code, codes)
	}
	if a.ReadsOutput() {
		re, err := regexp.Compile(a.OutputMatches)
		if err != nil {
			return fmt.Sprintf("assert.output_matches: %v", err) // validated at parse time
		}
		if !re.Match(output) {
			return fmt.Sprintf("output does not match %s", a.OutputMatches)
		}
	}
	return ""
}

// Retries reports whether a failure of attempt (1-based) for reason gets
// another attempt, and after what delay.
func (r Retry) Retries(attempt int, reason engine.Reason) (time.Duration, bool) {
	if attempt > r.Max {
		return 0, false
	}
	for _, on := range r.On {
		if on == reason {
			delay := r.Delay
			if r.Exponential {
				delay = min(delay<<min(attempt-1, 20), MaxRetryDelay)
			}
			return delay, true
		}
	}
	return 0, false
}

// DefaultRetryOn is what retry.on is when a runbook does not say: every
// reason except a deliberate cancel.
func DefaultRetryOn() []engine.Reason {
	return []engine.Reason{engine.ReasonExitCode, engine.ReasonAssert, engine.ReasonTimeout, engine.ReasonAgentLost, engine.ReasonInfra}
}

// TimeoutFor returns the step's timeout, else global.timeout, else DefaultTimeout.
func (rb *Runbook) TimeoutFor(s Step) time.Duration {
	switch {
	case s.Timeout > 0:
		return s.Timeout
	case rb.Global.Timeout > 0:
		return rb.Global.Timeout
	}
	return DefaultTimeout
}

// SecretsFor returns the names of the secrets the step gets: global.secrets
// and its own, each once, in order.
func (rb *Runbook) SecretsFor(s Step) []string {
	var out []string
	for _, n := range append(append([]string{}, rb.Global.Secrets...), s.Secrets...) {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// LabelsFor returns the labels an agent needs to run the step.
func (rb *Runbook) LabelsFor(s Step) []string {
	if s.RunsOn != nil {
		return s.RunsOn
	}
	return rb.Global.Labels
}

// ImageFor returns the step's image, falling back to global.image. An empty
// result means the agent's default image.
func (rb *Runbook) ImageFor(s Step) string {
	if s.Image != "" {
		return s.Image
	}
	return rb.Global.Image
}

// EnvFor merges global.env and the step's env; the step wins.
func (rb *Runbook) EnvFor(s Step) map[string]string {
	env := make(map[string]string, len(rb.Global.Env)+len(s.Env))
	for k, v := range rb.Global.Env {
		env[k] = v
	}
	for k, v := range s.Env {
		env[k] = v
	}
	return env
}

// Deferred returns the step's values that may hold ${{ }}, with global
// defaults merged in.
func (rb *Runbook) Deferred(s Step) Deferred {
	return Deferred{Image: rb.ImageFor(s), Command: s.Command, Args: s.Args, Env: rb.EnvFor(s)}
}

// Condition returns the step's effective condition text: its if, or
// always() for a cleanup step, or "" (success()).
func (s Step) Condition() string {
	if s.If == "" && s.Cleanup {
		return "always()"
	}
	return s.If
}

// Nodes returns the step graph in the engine's terms.
func (rb *Runbook) Nodes() []engine.Node {
	nodes := make([]engine.Node, len(rb.Steps))
	for i, s := range rb.Steps {
		nodes[i] = engine.Node{Name: s.Name, DependsOn: s.DependsOn}
	}
	return nodes
}
