package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-ci/baton/agent"
	"github.com/baton-ci/baton/agent/rpc"
	"github.com/baton-ci/baton/shared/protocol"
)

// fleet is N in-process agents: the real agent.Agent run loop with the
// real rpc.Client over loopback HTTP and SSE, each with its own identity,
// state dir and connections, and a no-op executor. It observes what the
// agents see through a thin wrapper around their client.
type fleet struct {
	url, token string
	dir        string
	h2c        bool          // agents speak HTTP/2 without TLS
	delay      time.Duration // how long each no-op step takes
	logger     *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	agents []*simAgent
	errs   []error // agents that could not start

	up       atomic.Int64                // agents whose control channel is up
	disabled atomic.Int64                // agents in state Disabled
	dispatch atomic.Pointer[dispatchLog] // the workload being measured, if any
	watch    atomic.Pointer[hintWatch]   // the control hints being timed, if any
}

// simAgent is one agent of the fleet.
type simAgent struct {
	idx     int
	id      string
	started atomic.Bool // its control channel came up once
}

func newFleet(url, token, dir string, delay time.Duration, logger *slog.Logger) *fleet {
	ctx, cancel := context.WithCancel(context.Background())
	return &fleet{url: url, token: token, dir: dir, delay: delay, logger: logger, ctx: ctx, cancel: cancel}
}

// grow starts n more agents, at most concurrency of them registering and
// connecting at once: a slot frees when an agent's control channel is up.
// It returns when all have come up, or after within.
func (f *fleet) grow(ctx context.Context, n, concurrency int, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	slots := make(chan struct{}, concurrency)
	f.mu.Lock()
	first := len(f.agents)
	f.mu.Unlock()
	for i := first; i < first+n; i++ {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return fmt.Errorf("%d of %d agents up after %s: %w", f.up.Load(), first+n, within, ctx.Err())
		}
		if err := f.start(i, func() { <-slots }); err != nil {
			return err
		}
	}
	for f.up.Load() < int64(first+n) {
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("%d of %d agents up after %s: %w", f.up.Load(), first+n, within, ctx.Err())
		}
	}
	return nil
}

// start runs agent i; cameUp is called once when its control channel is
// first up.
func (f *fleet) start(i int, cameUp func()) error {
	stateDir := filepath.Join(f.dir, "agents", fmt.Sprint(i))
	id, err := agent.LoadOrCreateIdentity(stateDir)
	if err != nil {
		return err
	}
	client, err := rpc.New(f.url, id.ID, id.Signing)
	if err != nil {
		return err
	}
	if f.h2c {
		client.UseH2C()
	}
	sim := &simAgent{idx: i, id: id.ID}
	log := f.logger.With(slog.String("agent_id", id.ID))
	var disabled bool // owned by the agent's Run goroutine
	var wasUp bool    // the same
	a := &agent.Agent{
		Config: agent.Config{Name: fmt.Sprintf("load-%05d", i), Version: "baton-load", Token: f.token,
			ReserveWait: protocol.MaxReserveWait, StateDir: stateDir},
		Identity: id,
		Client:   &observedClient{Client: client, f: f, sim: sim},
		Executor: noop{f: f},
		Logger:   log,
		OnState: func(s agent.State) {
			if (s == agent.StateDisabled) != disabled {
				disabled = !disabled
				if disabled {
					f.disabled.Add(1)
				} else {
					f.disabled.Add(-1)
				}
			}
		},
		OnControl: func(up bool) {
			// Told on every failed attempt too: count changes only.
			if up == wasUp {
				return
			}
			wasUp = up
			if up {
				f.up.Add(1)
				if sim.started.CompareAndSwap(false, true) {
					cameUp()
				}
			} else {
				f.up.Add(-1)
			}
		},
	}
	f.mu.Lock()
	f.agents = append(f.agents, sim)
	f.mu.Unlock()
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		if err := a.Run(f.ctx); err != nil {
			f.mu.Lock()
			f.errs = append(f.errs, fmt.Errorf("agent %d: %w", i, err))
			f.mu.Unlock()
		}
		if sim.started.CompareAndSwap(false, true) {
			cameUp() // it never came up: free its slot
		}
	}()
	return nil
}

// list returns the agents started so far.
func (f *fleet) list() []*simAgent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*simAgent(nil), f.agents...)
}

// stop drains every agent (as SIGTERM would) and waits up to within for
// their Run loops to return.
func (f *fleet) stop(within time.Duration) error {
	f.cancel()
	done := make(chan struct{})
	go func() { f.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(within):
		return fmt.Errorf("agents still running %s after the stop", within)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.errs) > 0 {
		return fmt.Errorf("%d agents failed, first: %w", len(f.errs), f.errs[0])
	}
	return nil
}

// observedClient is the agent's real rpc.Client; it notes when a
// reservation arrives, when a completion is acknowledged, and every
// control-channel hint, before the agent acts on them.
type observedClient struct {
	*rpc.Client
	f   *fleet
	sim *simAgent
}

func (c *observedClient) Reserve(ctx context.Context, wait time.Duration) (*protocol.Reservation, bool, error) {
	res, parked, err := c.Client.Reserve(ctx, wait)
	if res != nil {
		if l := c.f.dispatch.Load(); l != nil {
			l.stepReserved(res.StepID, time.Now())
		}
	}
	return res, parked, err
}

func (c *observedClient) Complete(ctx context.Context, stepID string, res protocol.StepResult) (*protocol.Reservation, error) {
	sent := time.Now()
	next, err := c.Client.Complete(ctx, stepID, res)
	if l := c.f.dispatch.Load(); l != nil {
		now := time.Now()
		l.stepCompleted(stepID, sent, now, err)
		if next != nil {
			l.stepReserved(next.StepID, now)
		}
	}
	return next, err
}

func (c *observedClient) Events(ctx context.Context, connected func(), handle func(kind string)) error {
	return c.Client.Events(ctx, connected, func(kind string) {
		if w := c.f.watch.Load(); w != nil {
			w.heard(c.sim.idx, kind, time.Now())
		}
		handle(kind)
	})
}

// noop is an Executor that runs nothing: exit 0, after the fleet's delay.
type noop struct{ f *fleet }

func (e noop) Execute(ctx context.Context, spec agent.StepSpec, _ io.Writer) (agent.Outcome, error) {
	if l := e.f.dispatch.Load(); l != nil {
		l.stepStarted(spec.StepID, spec.RunID, spec.StepName)
	}
	if e.f.delay > 0 {
		select {
		case <-time.After(e.f.delay):
		case <-ctx.Done():
			return agent.Outcome{}, context.Cause(ctx)
		}
	}
	return agent.Outcome{}, nil
}

// hintWatch records when each agent heard control hints of one kind.
type hintWatch struct {
	kind string
	mu   sync.Mutex
	at   [][]time.Time // by agent index
}

func newHintWatch(kind string, agents int) *hintWatch {
	return &hintWatch{kind: kind, at: make([][]time.Time, agents)}
}

func (w *hintWatch) heard(idx int, kind string, at time.Time) {
	if kind != w.kind {
		return
	}
	w.mu.Lock()
	if idx < len(w.at) {
		w.at[idx] = append(w.at[idx], at)
	}
	w.mu.Unlock()
}

// first returns when each agent first heard the hint (zero: not yet).
func (w *hintWatch) first() []time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]time.Time, len(w.at))
	for i, ts := range w.at {
		if len(ts) > 0 {
			out[i] = ts[0]
		}
	}
	return out
}

// all returns every time any agent heard the hint.
func (w *hintWatch) all() []time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []time.Time
	for _, ts := range w.at {
		out = append(out, ts...)
	}
	return out
}
