// Package shell runs steps as plain processes on the agent's host, for
// hosts without Docker. It offers NO isolation: a step runs as the agent's
// user, sees the host's filesystem and network, and can outlive a killed
// agent. An operator must choose it (baton-agent --executor shell).
package shell

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"github.com/baton-ci/baton/agent"
	"github.com/baton-ci/baton/shared/runbook"
)

// Options configure the executor.
type Options struct {
	// WorkDir holds one directory per step attempt, removed afterwards.
	WorkDir string
	// StopGrace is how long a cancelled step gets between SIGTERM and SIGKILL.
	StopGrace time.Duration
	// Path is the PATH steps get; empty: the agent's own.
	Path   string
	Logger *slog.Logger
}

// Executor runs steps with sh -c in a fresh working directory.
type Executor struct{ opts Options }

var _ agent.Executor = (*Executor)(nil)

// New checks the work dir and returns an Executor.
func New(opts Options) (*Executor, error) {
	if opts.WorkDir == "" {
		return nil, errors.New("shell executor: a work dir is required")
	}
	if err := os.MkdirAll(opts.WorkDir, 0o700); err != nil {
		return nil, fmt.Errorf("shell executor: work dir: %w", err)
	}
	if opts.StopGrace == 0 {
		opts.StopGrace = 10 * time.Second
	}
	if opts.Path == "" {
		opts.Path = os.Getenv("PATH")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Executor{opts: opts}, nil
}

// Execute runs the step in <work-dir>/<step>-<attempt>/workspace with only
// the step's environment (never the agent's, which may hold credentials),
// and kills its whole process group when ctx ends: SIGTERM, then SIGKILL
// after the grace period.
func (e *Executor) Execute(ctx context.Context, spec agent.StepSpec, out io.Writer) (agent.Outcome, error) {
	dir := filepath.Join(e.opts.WorkDir, fmt.Sprintf("%s-%d", filepath.Base(spec.StepID), spec.Attempt))
	workspace := filepath.Join(dir, "workspace")
	if err := os.MkdirAll(workspace, 0o700); err != nil {
		return agent.Outcome{}, fmt.Errorf("step directory: %w", err)
	}
	defer os.RemoveAll(dir)
	outputs := filepath.Join(dir, "outputs")
	if err := os.WriteFile(outputs, nil, 0o600); err != nil {
		return agent.Outcome{}, fmt.Errorf("outputs file: %w", err)
	}
	if spec.Image != "" {
		fmt.Fprintf(out, "baton: shell executor: image %s is ignored; the step runs on the host\n", spec.Image)
	}
	args := spec.Args
	if len(args) == 0 {
		args = []string{"sh", "-c", spec.Command}
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = workspace
	if spec.SourceDir != "" {
		cmd.Dir = spec.SourceDir // the host has no /job/src: the step starts in its source
	}
	cmd.Env = e.env(spec, workspace, outputs)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A background child holding the output open must not hold the step.
	cmd.WaitDelay = e.opts.StopGrace
	if err := cmd.Start(); err != nil {
		return agent.Outcome{}, fmt.Errorf("start %s: %w", args[0], err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var err error
	select {
	case err = <-waited:
	case <-ctx.Done():
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-waited:
		case <-time.After(e.opts.StopGrace):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-waited
		}
		return agent.Outcome{ExitCode: -1}, fmt.Errorf("step cancelled: %w", context.Cause(ctx))
	}
	// The step is over: nothing of its process group may linger.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	code := 0
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		code = exitErr.ExitCode()
		if code < 0 {
			code = 128 + int(exitErr.Sys().(syscall.WaitStatus).Signal())
		}
	case err != nil && !errors.Is(err, exec.ErrWaitDelay):
		return agent.Outcome{ExitCode: -1}, fmt.Errorf("wait for the step: %w", err)
	}
	return agent.Outcome{ExitCode: code, Outputs: readOutputs(outputs)}, nil
}

// env is the step's whole environment.
func (e *Executor) env(spec agent.StepSpec, workspace, outputs string) []string {
	env := make([]string, 0, len(spec.Env)+len(spec.SecretEnv)+10)
	for k, v := range spec.Env {
		env = append(env, k+"="+v)
	}
	for k, v := range spec.SecretEnv {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return append(env,
		"PATH="+e.opts.Path, "HOME="+workspace, "CI=true", "BATON=true",
		"BATON_RUN_ID="+spec.RunID, "BATON_STEP_NAME="+spec.StepName, "BATON_OUTPUT="+outputs,
		"BATON_WORKSPACE="+workspace, fmt.Sprintf("BATON_STEP_ATTEMPT=%d", spec.Attempt),
		"BATON_SOURCE_DIR="+spec.SourceDir, "BATON_CI_DIR="+spec.CIDir, "BATON_ARTIFACTS_DIR="+spec.ArtifactsDir)
}

// readOutputs reads at most one byte past the outputs limit, so an
// oversized file is reported, not silently cut.
func readOutputs(path string) []byte {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, runbook.MaxOutputBytes+1))
	return b
}
