package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"
)

// Targets (issue 6).
const (
	targetP50         = 2 * time.Millisecond
	targetP99         = 20 * time.Millisecond
	targetStepsPerS   = 2000 // on SQLite
	targetStepsPerSPG = 1500 // on PostgreSQL
	targetFleetRSS    = 1 << 30
	targetControlAll  = 2 * time.Second
)

// benchDispatch starts a server and cfg.Agents agents, then runs the
// latency workload (few chains: most agents wait) and the throughput
// workload (more chains than agents: every agent busy), printing each.
func benchDispatch(ctx context.Context, cfg Config, logger *slog.Logger, w io.Writer) (err error) {
	dir := filepath.Join(cfg.WorkDir, "dispatch")
	srv, stop, err := startServerOn(ctx, cfg, dir)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, stop()) }()
	adm := newAdmin(srv.URL, srv.AdminToken, 16)
	token, err := adm.registrationToken(ctx)
	if err != nil {
		return err
	}
	f := newFleet(srv.URL, token, dir, cfg.StepDelay, logger)
	f.h2c = cfg.H2C
	defer func() { err = errors.Join(err, f.stop(30*time.Second)) }()
	started := time.Now()
	if err := f.grow(ctx, cfg.Agents, cfg.RegisterConcurrency, cfg.Timeout); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n== dispatch: %d agents (connected in %s), no-op steps in chains s0 → s1 → …, %s\n",
		cfg.Agents, time.Since(started).Round(time.Millisecond), cfg.dbName())

	workloads := []struct {
		name          string
		chains, steps int
	}{
		{"latency", cfg.LatencyChains, cfg.LatencySteps},
		{"throughput", cfg.ThroughputChains, cfg.ThroughputSteps},
	}
	for _, wl := range workloads {
		m, err := startMeter(srv.Pid())
		if err != nil {
			return err
		}
		res, runErr := runChains(ctx, adm, f, wl.chains, wl.steps/wl.chains, cfg.Timeout)
		use, err := m.stop()
		if err != nil {
			return err
		}
		printChains(w, wl.name, res, use, cfg.DB != "")
		if runErr != nil {
			return fmt.Errorf("%s workload: %w", wl.name, runErr)
		}
	}
	return nil
}

func printChains(w io.Writer, name string, r chainsResult, use metered, postgres bool) {
	lat := Summarize(r.Latency)
	fmt.Fprintf(w, "%s: %d chain(s) × %d steps; %d steps completed in %s = %.0f steps/s\n",
		name, r.Chains, r.Length, r.Steps, r.Wall.Round(time.Millisecond), r.StepsPerSecond())
	fmt.Fprintf(w, "  dispatch latency (predecessor's /complete sent → reservation at an agent): %s\n", lat)
	if r.Chains > r.Agents {
		fmt.Fprintf(w, "    (more chains than agents: this includes waiting for a free agent)\n")
	}
	fmt.Fprintf(w, "  /complete round trip: %s\n", Summarize(r.Complete))
	fmt.Fprintf(w, "  %s\n", use)
	if r.Failed > 0 || r.NotSucceeded > 0 {
		fmt.Fprintf(w, "  PROBLEMS: %d /complete calls failed, %d runs did not succeed\n", r.Failed, r.NotSucceeded)
	}
	switch name {
	case "latency":
		fmt.Fprintf(w, "  target p50 ≤ %s: %s; p99 ≤ %s: %s\n", ms(targetP50), verdict(lat.N > 0 && lat.P50 <= targetP50),
			ms(targetP99), verdict(lat.N > 0 && lat.P99 <= targetP99))
	case "throughput":
		target := targetStepsPerS
		if postgres {
			target = targetStepsPerSPG
		}
		fmt.Fprintf(w, "  target ≥ %d steps/s: %s\n", target, verdict(r.StepsPerSecond() >= float64(target)))
	}
}

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}
