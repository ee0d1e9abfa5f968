package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/baton-ci/baton/agent"
)

// Stub is a canned result for one attempt of a step.
type Stub struct {
	ExitCode int               `yaml:"exit_code"`
	Output   string            `yaml:"output"`
	Outputs  map[string]string `yaml:"outputs"`
	// Error, when set, means the step could not run (reason infra).
	Error string `yaml:"error"`
}

// Stubs holds canned results by step name; a list gives one per attempt
// (the last one repeats). Steps without stubs succeed with no output.
type Stubs map[string][]Stub

// LoadStubs reads a stubs file: step name to a result or a list of them.
func LoadStubs(path string) (Stubs, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var raw map[string]yaml.Node
	if err := yaml.Unmarshal(text, &raw); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	stubs := Stubs{}
	for name, node := range raw {
		var list []Stub
		if node.Kind == yaml.SequenceNode {
			err = node.Decode(&list)
		} else {
			var one Stub
			err = node.Decode(&one)
			list = []Stub{one}
		}
		if err != nil {
			return nil, fmt.Errorf("%s: step %s: %w", path, name, err)
		}
		stubs[name] = list
	}
	return stubs, nil
}

// StubExecutor answers each step with its stub instead of running it.
type StubExecutor struct{ Stubs Stubs }

var _ agent.Executor = StubExecutor{}

// Execute returns the stub for the step's attempt.
func (e StubExecutor) Execute(ctx context.Context, spec agent.StepSpec, out io.Writer) (agent.Outcome, error) {
	list := e.Stubs[spec.StepName]
	if len(list) == 0 {
		return agent.Outcome{}, nil
	}
	s := list[min(spec.Attempt, len(list))-1]
	io.WriteString(out, s.Output)
	if s.Error != "" {
		return agent.Outcome{ExitCode: -1}, errors.New(s.Error)
	}
	keys := make([]string, 0, len(s.Outputs))
	for k := range s.Outputs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		if v := s.Outputs[k]; strings.Contains(v, "\n") {
			fmt.Fprintf(&b, "%s<<BATON_EOF\n%s\nBATON_EOF\n", k, v)
		} else {
			fmt.Fprintf(&b, "%s=%s\n", k, v)
		}
	}
	return agent.Outcome{ExitCode: s.ExitCode, Outputs: []byte(b.String())}, nil
}
