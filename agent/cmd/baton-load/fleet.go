package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/baton-ci/baton/shared/protocol"
)

// benchFleet starts a server and cfg.Fleet idle agents, measures the idle
// server (CPU, RSS, how long a ping round takes to reach every agent),
// then sends a control command to every agent and measures how long it
// takes to reach them all.
func benchFleet(ctx context.Context, cfg Config, logger *slog.Logger, w io.Writer) (err error) {
	n := cfg.Fleet
	dir := filepath.Join(cfg.WorkDir, "fleet")
	srv, stop, err := startServerOn(ctx, cfg, dir)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, stop()) }()
	limit, err := openFileLimit(srv.Pid())
	if err != nil {
		return err
	}
	adm := newAdmin(srv.URL, srv.AdminToken, cfg.ControlConcurrency)
	token, err := adm.registrationToken(ctx)
	if err != nil {
		return err
	}
	f := newFleet(srv.URL, token, dir, 0, logger)
	f.h2c = cfg.H2C
	defer func() { err = errors.Join(err, f.stop(time.Minute)) }()
	fmt.Fprintf(w, "\n== fleet: %d idle agents (server ulimit -n %s)\n", n, limit)

	started := time.Now()
	if err := f.grow(ctx, n, cfg.RegisterConcurrency, cfg.Timeout); err != nil {
		return err
	}
	took := time.Since(started)
	list, err := adm.agents(ctx)
	if err != nil {
		return err
	}
	connected := 0
	for _, a := range list {
		if a.Connected {
			connected++
		}
	}
	fmt.Fprintf(w, "registered and connected: %d in %s (%.0f agents/s, %d at a time); the server lists %d, %d connected\n",
		n, took.Round(time.Millisecond), float64(n)/took.Seconds(), cfg.RegisterConcurrency, len(list), connected)

	broadcast, err := measureIdle(ctx, cfg, srv, f, w)
	if err != nil {
		return err
	}
	control, err := measureControl(ctx, cfg, adm, f, w)
	if err != nil {
		return err
	}
	end, err := sampleProc(srv.Pid())
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "server RSS with %d agents: %s now, peak %s\n", n, mib(end.RSS), mib(end.HWM))
	fmt.Fprintf(w, "  target RSS ≤ %s: %s; a control command reaches all within %s: %s (%s), %s (ping broadcast)\n",
		mib(targetFleetRSS), fleetVerdict(end.HWM <= targetFleetRSS, n), targetControlAll,
		fleetVerdict(control <= targetControlAll, n), controlName(cfg.Control), fleetVerdict(broadcast <= targetControlAll, n))
	return nil
}

// never stands for a hint that did not reach every agent.
const never = time.Duration(1<<63 - 1)

// measureIdle watches the idle fleet for cfg.IdleWindow: the server's CPU,
// memory and descriptors, and the ping rounds. It returns how long the
// fullest ping round took from the first agent to the last, or never if
// no round reached them all.
func measureIdle(ctx context.Context, cfg Config, srv *serverProc, f *fleet, w io.Writer) (time.Duration, error) {
	n := len(f.list())
	pings := newHintWatch("ping", n)
	f.watch.Store(pings)
	defer f.watch.Store(nil)
	m, err := startMeter(srv.Pid())
	if err != nil {
		return 0, err
	}
	select { // a measurement window, not a wait for a condition
	case <-time.After(cfg.IdleWindow):
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	idle, err := m.stop()
	if err != nil {
		return 0, err
	}
	fmt.Fprintf(w, "idle for %.0f s: %s; %d open fds\n", idle.Server.Wall.Seconds(), idle, idle.Server.FDs)
	count, spread := broadcastRound(pings.all(), time.Second)
	fmt.Fprintf(w, "ping broadcast (one hint from the server to every agent): %d of %d agents heard one round within %s, first to last\n",
		count, n, ms(spread))
	if count < n {
		return never, nil
	}
	return spread, nil
}

// measureControl sends cfg.Control to every agent, cfg.ControlConcurrency
// at a time, and times each to its hint. It returns how long after the
// first command the last agent heard its hint, or never if some did not
// within cfg.ControlTimeout.
func measureControl(ctx context.Context, cfg Config, adm *admin, f *fleet, w io.Writer) (time.Duration, error) {
	agents := f.list()
	hints := newHintWatch(hintOf(cfg.Control), len(agents))
	f.watch.Store(hints)
	defer f.watch.Store(nil)
	if cfg.Control == "fleet-disable" {
		return measureFleetCommand(ctx, cfg, adm, f, hints, w)
	}
	send := func(id string) error {
		if cfg.Control == "disable" {
			return adm.disable(ctx, id)
		}
		return adm.configure(ctx, id, protocol.AgentSettings{EvictionTime: "5m"})
	}

	issued := make([]time.Time, len(agents))
	start := time.Now()
	deadline := start.Add(cfg.ControlTimeout)
	var apiErr error
	var once sync.Once
	next := make(chan int)
	var wg sync.WaitGroup
	for range cfg.ControlConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				issued[i] = time.Now()
				if err := send(agents[i].id); err != nil {
					once.Do(func() { apiErr = err })
				}
			}
		}()
	}
	sent := 0
	for i := range agents {
		if time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		next <- i
		sent++
	}
	close(next)
	wg.Wait()
	sending := time.Since(start)
	if apiErr != nil {
		return 0, fmt.Errorf("control command: %w", apiErr)
	}
	perAgent, last, reached := hintsHeard(ctx, hints, len(agents), start, deadline, func(i int) time.Time { return issued[i] })
	fmt.Fprintf(w, "control: %s for each agent: %d of %d commands answered in %s (%.0f/s, %d at a time)\n",
		commandName(cfg.Control), sent, len(agents), sending.Round(time.Millisecond), float64(sent)/sending.Seconds(), cfg.ControlConcurrency)
	fmt.Fprintf(w, "  %d of %d agents heard the %q hint; the last %s after the first command was sent\n",
		reached, len(agents), cfg.Control, last.Sub(start).Round(time.Millisecond))
	fmt.Fprintf(w, "  per agent, its command sent → its hint heard: %s\n", Summarize(perAgent))
	if cfg.Control == "disable" {
		fmt.Fprintf(w, "  %d of %d agents in state disabled %s after the first command was sent\n",
			waitDisabled(ctx, f, len(agents), deadline), len(agents), time.Since(start).Round(time.Millisecond))
	}
	if reached < len(agents) {
		return never, nil
	}
	return last.Sub(start), nil
}

// measureFleetCommand sends one fleet command that disables every agent,
// and times it to the last agent's hint.
func measureFleetCommand(ctx context.Context, cfg Config, adm *admin, f *fleet, hints *hintWatch, w io.Writer) (time.Duration, error) {
	agents := f.list()
	start := time.Now()
	res, err := adm.disableFleet(ctx)
	answered := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("fleet command: %w", err)
	}
	deadline := start.Add(cfg.ControlTimeout)
	perAgent, last, reached := hintsHeard(ctx, hints, len(agents), start, deadline, func(int) time.Time { return start })
	fmt.Fprintf(w, "control: one POST /api/v1/fleet/disable {\"all\":true}: answered in %s, %d agents changed\n",
		answered.Round(time.Millisecond), len(res.Agents))
	fmt.Fprintf(w, "  %d of %d agents heard the \"disable\" hint; the last %s after the command was sent\n",
		reached, len(agents), last.Sub(start).Round(time.Millisecond))
	fmt.Fprintf(w, "  per agent, command sent → hint heard: %s\n", Summarize(perAgent))
	fmt.Fprintf(w, "  %d of %d agents in state disabled %s after the command was sent\n",
		waitDisabled(ctx, f, len(agents), deadline), len(agents), time.Since(start).Round(time.Millisecond))
	if reached < len(agents) {
		return never, nil
	}
	return last.Sub(start), nil
}

// hintsHeard waits until all n agents have heard the watched hint, or the
// deadline; it returns, for each that did, the time from issued(i) to its
// hint, when the last one heard it (start if none did), and how many did.
func hintsHeard(ctx context.Context, hints *hintWatch, n int, start, deadline time.Time, issued func(i int) time.Time) ([]time.Duration, time.Time, int) {
	heard := hints.first()
	for countSet(heard) < n && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
		heard = hints.first()
	}
	var perAgent []time.Duration
	last := start
	for i, at := range heard {
		if at.IsZero() {
			continue
		}
		perAgent = append(perAgent, at.Sub(issued(i)))
		if at.After(last) {
			last = at
		}
	}
	return perAgent, last, countSet(heard)
}

// waitDisabled waits until all n agents are in state disabled, or the
// deadline, and returns how many are.
func waitDisabled(ctx context.Context, f *fleet, n int, deadline time.Time) int64 {
	for f.disabled.Load() < int64(n) && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	return f.disabled.Load()
}

// controlName says how -control sent the command.
func controlName(control string) string {
	if control == "fleet-disable" {
		return "one fleet disable"
	}
	return control + " for each agent"
}

// hintOf is the control hint a -control command makes agents hear.
func hintOf(control string) string {
	if control == "config" {
		return "config"
	}
	return "disable"
}

// fleetVerdict judges a fleet target, which is set for 10000 agents: a
// smaller fleet can fail it (more agents cost more) but not pass it.
func fleetVerdict(ok bool, n int) string {
	switch {
	case ok && n < 10000:
		return fmt.Sprintf("not judged (%d agents)", n)
	case !ok && n < 10000:
		return fmt.Sprintf("FAIL already with %d agents", n)
	}
	return verdict(ok)
}

func countSet(ts []time.Time) int {
	n := 0
	for _, t := range ts {
		if !t.IsZero() {
			n++
		}
	}
	return n
}

func commandName(kind string) string {
	if kind == "disable" {
		return "POST /api/v1/agents/{id}/disable"
	}
	return "PUT /api/v1/agents/{id}/config"
}
