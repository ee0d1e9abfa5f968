// Package runbook is the runbook.yml model: parsing with positions, and
// validation of the step graph (unique names, known dependencies, no cycles).
package runbook

import "github.com/baton-ci/baton/shared/engine"

// Runbook is a parsed runbook.yml.
type Runbook struct {
	Name   string `yaml:"name"`
	Global Global `yaml:"global"`
	Steps  []Step `yaml:"steps"`
}

// Global holds defaults that apply to every step.
type Global struct {
	Env   map[string]string `yaml:"env"`
	Image string            `yaml:"image"`
}

// Step is one unit of work, run in its own container.
type Step struct {
	Name      string            `yaml:"name"`
	Command   string            `yaml:"command"`
	Image     string            `yaml:"image"`
	DependsOn []string          `yaml:"depends_on"`
	Env       map[string]string `yaml:"env"`

	// Pos is where the step starts in the source.
	Pos Pos `yaml:"-"`
}

// Pos is a position in a runbook file; Line and Column start at 1.
type Pos struct {
	Line   int
	Column int
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

// Nodes returns the step graph in the engine's terms.
func (rb *Runbook) Nodes() []engine.Node {
	nodes := make([]engine.Node, len(rb.Steps))
	for i, s := range rb.Steps {
		nodes[i] = engine.Node{Name: s.Name, DependsOn: s.DependsOn}
	}
	return nodes
}
