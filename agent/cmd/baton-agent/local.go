package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/baton-ci/baton/agent/docker"
	"github.com/baton-ci/baton/agent/local"
	"github.com/baton-ci/baton/shared/engine"
)

// runLocal runs a runbook on this machine in Docker containers, with no
// server ("laptop mode"), printing progress as steps start and end and the
// logs of failed steps at the end. It fails unless the run succeeds.
func runLocal(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("baton-agent run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	params := paramFlag(fs)
	parallel := fs.Int("parallel", 2, "steps run at once")
	image := fs.String("default-image", docker.DefaultImage, "image for steps that name none")
	network := fs.String("network", docker.NetworkNone, "step container network: none, bridge, run (a network for this run; steps reach each other by name) or host (with --allow-host-network)")
	allowHost := fs.Bool("allow-host-network", false, "allow --network host")
	rb, err := parseOne(fs, args, "[--param NAME=VALUE]... [--parallel N] [--default-image IMAGE] RUNBOOK.yml")
	if err != nil {
		return err
	}
	if err := docker.CheckNetwork(*network, *allowHost); err != nil {
		return usageError{fmt.Errorf("--network: %w", err)}
	}
	exec, err := docker.New(ctx, docker.Options{AgentID: "local", DefaultImage: *image, Network: *network, AllowHostNetwork: *allowHost,
		Memory: 2 << 30, NanoCPUs: 2e9, PidsLimit: 1024})
	if err != nil {
		return err
	}
	defer exec.Close()
	p := &progress{w: stdout, start: time.Now()}
	res, err := (&local.Runner{Executor: exec, Parallel: *parallel, OnChange: p.change}).Run(ctx, rb, params)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	for _, s := range rb.Steps {
		r := res.Steps[s.Name]
		line := fmt.Sprintf("  %-24s %-10s", s.Name, r.State)
		if r.State == engine.StepSucceeded || r.State == engine.StepFailed {
			line += fmt.Sprintf(" %6s", r.Took.Round(100*time.Millisecond))
		}
		if r.Reason != "" {
			line += "  " + string(r.Reason)
		}
		fmt.Fprintln(stdout, strings.TrimRight(line, " "))
	}
	for _, s := range rb.Steps {
		if r := res.Steps[s.Name]; r.State == engine.StepFailed {
			fmt.Fprintf(stdout, "\n── log of %s (attempt %d) ──\n%s", s.Name, r.Attempts, r.Log)
			if r.Error != "" {
				fmt.Fprintf(stdout, "baton: %s\n", r.Error)
			}
		}
	}
	fmt.Fprintf(stdout, "\nrun %s in %s\n", res.State, time.Since(p.start).Round(100*time.Millisecond))
	if res.State != engine.RunSucceeded {
		return errors.New("the run did not succeed")
	}
	return nil
}

// progress prints one line per step event, as it happens.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
}

func (p *progress) change(step string, r *local.StepResult) {
	p.mu.Lock()
	defer p.mu.Unlock()
	at := time.Since(p.start).Round(100 * time.Millisecond)
	switch r.State {
	case engine.StepRunning:
		attempt := ""
		if r.Attempts > 1 {
			attempt = fmt.Sprintf(" (attempt %d)", r.Attempts)
		}
		fmt.Fprintf(p.w, "%7s  ▶ %s%s\n", at, step, attempt)
	case engine.StepSucceeded:
		fmt.Fprintf(p.w, "%7s  ✓ %s (%s)\n", at, step, r.Took.Round(100*time.Millisecond))
	case engine.StepFailed:
		why := string(r.Reason)
		if r.ExitCode != nil {
			why = fmt.Sprintf("exit %d", *r.ExitCode)
		}
		fmt.Fprintf(p.w, "%7s  ✗ %s (%s)\n", at, step, why)
	case engine.StepSkipped:
		fmt.Fprintf(p.w, "%7s  – %s skipped (%s)\n", at, step, r.Reason)
	case engine.StepReady:
		if r.Attempts > 0 {
			fmt.Fprintf(p.w, "%7s  ↻ %s will retry\n", at, step)
		}
	}
}
