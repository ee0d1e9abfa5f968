// Package agent is the Baton agent: it registers with the server, reserves
// Ready steps by long-polling, runs each through an Executor and reports the
// output and result. One goroutine (Run) owns the agent's state; reservations
// and step completions come back to it as messages.
package agent

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-ci/baton/agent/source"
	"github.com/baton-ci/baton/shared/engine"
	"github.com/baton-ci/baton/shared/envelope"
	"github.com/baton-ci/baton/shared/protocol"
)

// ServerClient is the agent's view of the server's agent API.
type ServerClient interface {
	Register(ctx context.Context, req protocol.RegisterRequest) (protocol.RegisterResponse, error)
	// Reserve long-polls for a step; nil, false, nil means none came
	// within wait. The server may park the agent instead (while its
	// control channel is up there): nil, true, nil; it then sends a "work"
	// hint when a step may be ready (protocol.HeaderParked).
	Reserve(ctx context.Context, wait time.Duration) (*protocol.Reservation, bool, error)
	// Events holds the control channel open, calling connected once it is
	// up and handle for every event, until it ends or ctx is done.
	Events(ctx context.Context, connected func(), handle func(kind string)) error
	// State asks what the server wants of the agent.
	State(ctx context.Context) (protocol.AgentState, error)
	// AppendLog, RenewLease and Complete act on a step the agent holds
	// under a lease; a stale lease is refused (409).
	AppendLog(ctx context.Context, stepID string, lease protocol.LeaseRequest, offset int64, data []byte, times []protocol.LineTime) error
	RenewLease(ctx context.Context, stepID string, lease protocol.LeaseRequest) (protocol.Lease, error)
	// Complete reports the result; when it asked (res.Next) the answer
	// may carry the agent's next step.
	Complete(ctx context.Context, stepID string, res protocol.StepResult) (*protocol.Reservation, error)
	// PutArtifact, GetArtifact and DeleteArtifact reach the artifacts of
	// the run of a step the agent holds, streamed (see package cacher).
	PutArtifact(ctx context.Context, stepID string, lease protocol.LeaseRequest, key string, body io.Reader, size int64, sum string) (protocol.Artifact, error)
	GetArtifact(ctx context.Context, stepID string, lease protocol.LeaseRequest, key string) (io.ReadCloser, protocol.Artifact, error)
	DeleteArtifact(ctx context.Context, stepID string, lease protocol.LeaseRequest, key string) error
	// Trigger starts a follow-up run from the step (cacher trigger).
	Trigger(ctx context.Context, stepID string, lease protocol.LeaseRequest, runbook string, params map[string]string) (string, error)
}

// StepSpec is what an Executor needs to run one step.
type StepSpec struct {
	RunID    string
	StepID   string
	StepName string
	Attempt  int
	Image    string   // empty: the executor's default image
	Command  string   // run with sh -c ...
	Args     []string // ... or, when set, run as is
	Env      map[string]string
	// SecretEnv are secrets given as environment variables. An executor
	// keeps them out of anything stored (container configuration): the
	// docker executor has cacher hand them to the step's first process.
	SecretEnv map[string]string
	// SourceDir and CIDir, when set, are host directories with the run's
	// prepared source and trusted CI source: the executor mounts them at
	// /job/src (the working directory) and /job/ci (read-only).
	SourceDir, CIDir string
	// Memory (bytes) and NanoCPUs are the runbook's limits; 0: the
	// executor's defaults, which are also its maximums.
	Memory, NanoCPUs int64
	// ArtifactsDir, when set, is a host directory mounted read-write at
	// ArtifactsMount; the agent stores what the step leaves there.
	ArtifactsDir string
	// Cacher, when set, is to be mounted into the step so that its
	// commands can run `cacher` (see package cacher).
	Cacher *CacherMount
}

// CacherMount is what a step needs to run cacher: the agent's own static
// binary, which runs as cacher when called by that name, and the directory
// holding the step's cacher socket (cacher.SocketName).
type CacherMount struct {
	Binary    string
	SocketDir string
}

// Where a step sees its sources.
const (
	SourceMount = "/job/src"
	CIMount     = "/job/ci"
)

// Executor runs one step to completion, writing its output to out. It
// returns how the step ended, or an error when it could not run to an exit
// (missing image, Docker down, cancelled).
type Executor interface {
	Execute(ctx context.Context, spec StepSpec, out io.Writer) (Outcome, error)
}

// Outcome is how a step's command ended.
type Outcome struct {
	ExitCode int
	// Outputs is what the step wrote to the file named by $BATON_OUTPUT
	// (see runbook.ParseOutputs), at most runbook.MaxOutputBytes+1 bytes.
	Outputs []byte
	// OOMKilled tells that the kernel killed the step for exceeding its
	// memory limit (the exit code is then usually 137).
	OOMKilled bool
	// Container names what ran the step (a Docker container id), if anything did.
	Container string
}

// Reaper is an Executor that can find and remove what earlier runs of this
// agent left behind (containers of a killed agent).
type Reaper interface {
	Reap(ctx context.Context, before time.Time, keep func(stepID string) bool) (int, error)
}

// reapEvery is how often the agent looks for orphaned step containers.
const reapEvery = 20 * time.Second

// Config is the agent's local configuration.
type Config struct {
	Name    string
	Version string
	// Labels are matched against steps' runs_on.
	Labels []string
	// Token is the registration token; it is sent only to register.
	Token string
	// ReserveWait is how long one reserve long-poll may wait.
	ReserveWait time.Duration
	// StateDir holds the identity; it is removed when the server deletes
	// the agent.
	StateDir string
	// LogLimit bounds how much of a step's output is kept (head and tail);
	// 0 means DefaultLogLimit.
	LogLimit int64
	// HooksDir holds lifecycle hooks (see HookPreStep); "" means none.
	HooksDir string
	// SourcesDir holds the sources prepared for steps; "" is the system's
	// temporary directory.
	SourcesDir string
	// Sources are the operator's rules for preparing sources.
	Sources source.Options
	// WorkDir holds a directory per running step attempt with its cacher
	// socket (see cacher.PrepareWorkDir); CacherBinary is the static
	// binary mounted into steps as cacher. Either empty: steps have no
	// cacher.
	WorkDir      string
	CacherBinary string
}

// Agent runs steps for a server.
type Agent struct {
	Config   Config
	Identity *Identity
	Client   ServerClient
	Executor Executor
	Logger   *slog.Logger

	// OnState, if set, is called from the Run goroutine on every state change.
	OnState func(State)
	// OnControl, if set, is told when the control channel goes up or down.
	OnControl func(up bool)
	// Metrics, if set, counts steps, reservations and reconnects.
	Metrics *Metrics

	remote    protocol.AgentConfig
	serverKey ed25519.PublicKey // signs reservations; from the registration answer
	// takesWork is whether a step ending may ask for the next one with
	// its result (the agent is Ready); set by the Run goroutine.
	takesWork atomic.Bool

	openerMu  sync.Mutex
	openerFor ed25519.PublicKey // the server key sessionOpener opens for
	sessions  *envelope.Opener
}

// Registration retries: fast while the server is unreachable, slower when it
// answers with a refusal (a bad token will not fix itself quickly).
var (
	networkBackoff = Backoff{Min: 500 * time.Millisecond, Max: 30 * time.Second}
	refusedBackoff = Backoff{Min: 5 * time.Second, Max: 5 * time.Minute}
	reserveBackoff = Backoff{Min: 500 * time.Millisecond, Max: 30 * time.Second}
)

// Messages to the Run goroutine.
type (
	reserved struct {
		a      *protocol.Assignment
		parked bool // the server will hint when a step may be ready
		err    error
	}
	// stepDone says a step ended; next is the step the server gave the
	// agent with the result, which takes its place.
	stepDone struct {
		stepID string
		next   *protocol.Assignment
	}
)

// defaultLease is the lease length assumed when the server names none.
const defaultLease = protocol.DefaultLeaseLength

// Messages from the control channel and state checks.
type (
	controlUp    struct{}
	controlDown  struct{ err error }
	controlEvent struct{ kind string }
	stateChecked struct {
		st  protocol.AgentState
		err error
	}
	recheck struct{}
)

// abandonPollAfter is how long a disabled agent lets the reserve poll it
// held finish before abandoning it.
const abandonPollAfter = 2 * time.Second

// Run registers, then follows the server: it reserves and runs steps while
// enabled, holds while disabled, idles while the server is unreachable, and
// drains or deletes itself when told. ctx ending (SIGTERM) drains: no new
// reservations; running steps get the eviction time to finish, then are
// cancelled; their results are still reported. Run returns nil when it
// stopped as asked; ErrDeleted after it was deleted and wiped its state.
func (a *Agent) Run(ctx context.Context) error {
	state := StateRegistering
	setState := func(e Event) {
		if next := Transition(state, e); next != state {
			a.Logger.Info("agent state", slog.String("from", string(state)), slog.String("to", string(next)), slog.String("event", string(e)))
			state = next
			a.takesWork.Store(state == StateReady)
			if a.OnState != nil {
				a.OnState(state)
			}
		}
	}
	a.reap(ctx, time.Time{}, nil) // nothing runs yet: whatever carries our id is an orphan
	if err := a.register(ctx); err != nil {
		setState(EventShutdown)
		if ctx.Err() != nil {
			return nil // stopped while registering, as asked
		}
		return err
	}
	setState(EventRegistered)

	// Steps run on their own context: shutdown stops taking work, it does
	// not kill steps; eviction and deletion do.
	stepCtx, killSteps := context.WithCancelCause(context.WithoutCancel(ctx))
	defer killSteps(&stoppedError{"agent stopped"})
	// The control channel and state checks live until Run returns.
	loopCtx, stopLoop := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLoop()
	msgs := make(chan any)
	send := func(m any) bool {
		select {
		case msgs <- m:
			return true
		case <-loopCtx.Done():
			return false
		}
	}
	restart := make(chan struct{}, 1)
	go a.control(loopCtx, send, restart)

	running := 0
	reserving := false
	// parked: the server holds no poll for us and will hint "work"; we
	// look again then, when the channel reconnects, or after a while.
	parked := false
	checkedOnce := false
	parkedRecheck := time.NewTimer(time.Hour)
	parkedRecheck.Stop()
	defer parkedRecheck.Stop()
	unpark := func() {
		parked = false
		parkedRecheck.Stop()
	}
	stopReserve := context.CancelFunc(func() {})
	defer func() { stopReserve() }()
	failures, checkFailures := 0, 0
	checking := false
	up := false      // the control channel is connected
	kick := func() { // restart the channel now, or reconnect without waiting out the backoff
		select {
		case restart <- struct{}{}:
		default:
		}
	}
	check := func() {
		if !checking {
			checking = true
			go func() {
				st, err := a.Client.State(loopCtx)
				send(stateChecked{st, err})
			}()
		}
	}
	watchdogEvery := 3 * a.remote.PingInterval
	if watchdogEvery <= 0 {
		watchdogEvery = 30 * time.Second
	}
	watchdog := time.NewTimer(watchdogEvery)
	defer watchdog.Stop()
	var eviction <-chan time.Time
	done := ctx.Done()
	held := map[string]chan struct{}{} // step ids running now (for reaping), with a poke to renew their lease at once
	reapTick := time.NewTicker(reapEvery)
	defer reapTick.Stop()
	start := func(asg *protocol.Assignment) {
		renewNow := make(chan struct{}, 1)
		held[asg.StepID] = renewNow
		go a.runStep(stepCtx, asg, stepOptions{keeping: leaseKeeping{length: a.remote.LeaseLength, renewNow: renewNow},
			logWithResult: a.remote.Has(protocol.FeatureCompleteLog), askNext: a.remote.Has(protocol.FeatureCompleteNext)}, msgs)
	}
	drain := func(why string) {
		setState(EventDrain)
		if state == StateDraining && eviction == nil {
			a.Logger.Info("draining", slog.String("why", why), slog.Int("running", running), slog.Duration("eviction", a.remote.EvictionTime))
			eviction = time.After(a.remote.EvictionTime)
		}
	}

	var abandon *time.Timer // ends the poll held when the agent was disabled
	defer func() {
		if abandon != nil {
			abandon.Stop()
		}
	}()
	for {
		switch {
		case state == StateReady:
			if abandon != nil {
				abandon.Stop()
				abandon = nil
			}
		case state == StateDisabled:
			// The poll's answer may be on its way with a step the server
			// reserved before the disable: dropping it would strand the
			// step until its lease lapsed. The server itself gives a
			// disabled agent no new step, so the poll is let finish for a
			// moment before it is abandoned; a step it brings is run.
			if reserving && abandon == nil {
				abandon = time.AfterFunc(abandonPollAfter, stopReserve)
			}
		default:
			stopReserve() // draining, deleting or lost: no new work, no waiting
		}
		// The first poll waits for the first state check (at once when the
		// control channel connects or fails): over HTTP/1.1 they then take
		// turns on one connection.
		if state == StateReady && !reserving && !parked && checkedOnce && running < max(a.remote.PoolSize, 1) {
			reserving = true
			rctx, cancel := context.WithCancel(ctx)
			stopReserve = cancel
			go a.reserve(rctx, failures, msgs)
		}
		if (state == StateDraining || state == StateDeleting) && running == 0 && !reserving {
			deleting := state == StateDeleting
			setState(EventIdle)
			if deleting {
				return a.wipe()
			}
		}
		if state == StateStopped {
			return nil
		}
		select {
		case m := <-msgs:
			switch m := m.(type) {
			case reserved:
				reserving = false
				switch {
				case m.err != nil && ctx.Err() == nil && state == StateReady:
					failures++
					a.Logger.Warn("reserve failed", slog.Any("err", m.err), slog.Int("failures", failures))
				case m.a != nil:
					// The server handed it out: run it even if we stopped
					// taking work meanwhile, so it is not stranded.
					failures = 0
					running++
					a.Metrics.reserved()
					a.Metrics.setRunning(running)
					start(m.a)
				case m.parked && state == StateReady && up:
					failures = 0
					parked = true
					parkedRecheck.Reset(protocol.ParkedRecheck + rand.N(protocol.ParkedRecheck/4))
				default:
					failures = 0
				}
			case stepDone:
				delete(held, m.stepID)
				if m.next != nil && held[m.next.StepID] != nil {
					m.next = nil // handed out twice (a report was retried): it runs already
				}
				if m.next != nil {
					// Given with the result: it takes the ended step's
					// place (run even if we stopped taking work, as above).
					a.Metrics.reserved()
					start(m.next)
				} else {
					running--
				}
				a.Metrics.setRunning(running)
			case controlUp:
				unpark() // hints to a parked agent went to the old channel
				up = true
				a.Logger.Info("control channel connected")
				a.setControl(true)
				watchdog.Reset(watchdogEvery)
				check()
			case controlDown:
				unpark() // no hint can come: hold polls again
				up = false
				if m.err != nil && ctx.Err() == nil {
					a.Logger.Info("control channel down", slog.Any("err", m.err))
				}
				a.setControl(false)
				check()
			case controlEvent:
				watchdog.Reset(watchdogEvery)
				switch m.kind {
				case "work":
					unpark()
				case "ping":
				case "cancel":
					// A step we run was cancelled: renewing its lease says which.
					for _, renewNow := range held {
						select {
						case renewNow <- struct{}{}:
						default:
						}
					}
				default:
					check()
				}
			case stateChecked:
				checking, checkedOnce = false, true
				unpark() // a poll also says whether we may take work now
				if m.err != nil {
					checkFailures++
					setState(EventLost)
					delay := networkBackoff.Delay(min(checkFailures, 10))
					if IsIncompatible(m.err) {
						// The server was replaced by one that does not speak
						// our protocol (its token call said so): wait slowly.
						delay = refusedBackoff.Delay(checkFailures - 1)
						a.Logger.Error("the server refuses this agent's protocol version; upgrade the agent (or the server, as the message says)",
							slog.Int("agent_protocol", protocol.ProtocolVersion), slog.String("agent_version", a.Config.Version),
							slog.Any("err", m.err), slog.Duration("retry_in", delay))
					} else {
						a.Logger.Warn("server not reachable", slog.Any("err", m.err))
					}
					time.AfterFunc(delay, func() { send(recheck{}) })
					continue
				}
				checkFailures = 0
				if !up {
					kick() // the server answers: reconnect the channel now
				}
				if m.st.Config.PoolSize > 0 { // the server's config may have changed since registration
					a.remote = m.st.Config
					if every := 3 * a.remote.PingInterval; every > 0 && every != watchdogEvery {
						watchdogEvery = every
						watchdog.Reset(watchdogEvery)
					}
				}
				switch m.st.State {
				case "enabled":
					setState(EventEnable)
				case "disabled":
					setState(EventDisable)
				case "draining":
					drain("the server asked")
				case "deleted":
					if state != StateDeleting {
						setState(EventDelete)
						killSteps(&stoppedError{"agent deleted"})
					}
				}
			case recheck:
				check()
			}
		case <-parkedRecheck.C:
			parked = false // a lost hint costs at most this wait
		case now := <-reapTick.C:
			keep := make(map[string]bool, len(held))
			for id := range held {
				keep[id] = true
			}
			go a.reap(loopCtx, now, func(id string) bool { return keep[id] })
		case <-watchdog.C:
			if up {
				a.Logger.Warn("no ping on the control channel; restarting it", slog.Duration("after", watchdogEvery))
				kick()
			}
			check()
			watchdog.Reset(watchdogEvery)
		case <-done:
			done = nil // seen once; in-flight reservations see the cancel themselves
			if state == StateRegistering {
				setState(EventShutdown)
			}
			drain("shutdown")
		case <-eviction:
			killSteps(&stoppedError{fmt.Sprintf("agent shut down: eviction time %s passed", a.remote.EvictionTime)})
		}
	}
}

// reap removes orphaned step containers when the executor can.
func (a *Agent) reap(ctx context.Context, before time.Time, keep func(string) bool) {
	r, ok := a.Executor.(Reaper)
	if !ok {
		return
	}
	if n, err := r.Reap(ctx, before, keep); err != nil {
		a.Logger.Warn("reaping orphaned containers", slog.Any("err", err))
	} else if n > 0 {
		a.Logger.Info("reaped orphaned containers", slog.Int("removed", n))
	}
}

// ErrDeleted is returned by Run after the server deleted the agent and the
// agent removed its state dir.
var ErrDeleted = errors.New("agent deleted by the server")

// wipe removes the agent's state dir (keys, identity) after a delete.
func (a *Agent) wipe() error {
	if a.Config.StateDir != "" {
		if err := os.RemoveAll(a.Config.StateDir); err != nil {
			return fmt.Errorf("agent deleted, but its state dir was not removed: %w", err)
		}
	}
	a.Logger.Info("agent deleted: state removed", slog.String("state_dir", a.Config.StateDir))
	return ErrDeleted
}

func (a *Agent) setControl(up bool) {
	if a.OnControl != nil {
		a.OnControl(up)
	}
}

// control keeps the control channel open: it reconnects with backoff and
// jitter after the stream ends, and when the Run loop asks (watchdog).
func (a *Agent) control(ctx context.Context, send func(any) bool, restart <-chan struct{}) {
	for attempt, first := 0, true; ctx.Err() == nil; attempt, first = attempt+1, false {
		if !first {
			a.Metrics.reconnected()
		}
		connCtx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-restart:
				cancel()
			case <-connCtx.Done():
			}
		}()
		start := time.Now()
		err := a.Client.Events(connCtx, func() { send(controlUp{}) }, func(kind string) { send(controlEvent{kind}) })
		cancel()
		if !send(controlDown{err}) {
			return
		}
		if time.Since(start) > time.Minute {
			attempt = 0
		}
		b := networkBackoff
		if IsRefused(err) {
			b = refusedBackoff
		}
		select {
		case <-ctx.Done():
			return
		case <-restart: // the Run loop saw the server answer: try now
		case <-time.After(b.Delay(attempt)):
		}
	}
}

// register retries until the server accepts the agent or ctx ends.
func (a *Agent) register(ctx context.Context) error {
	req := protocol.RegisterRequest{
		Token: a.Config.Token, AgentID: a.Identity.ID, Name: a.Config.Name, Version: a.Config.Version, Labels: a.Config.Labels,
		SigningKey: a.Identity.SigningPublic(), HPKEKey: a.Identity.HPKEPublic(), Protocol: protocol.ProtocolVersion,
	}
	for attempt := 0; ; attempt++ {
		resp, err := a.Client.Register(ctx, req)
		if err == nil {
			a.remote, a.serverKey = resp.Config, resp.ServerKey
			a.Logger.Info("registered", slog.Int("pool_size", resp.Config.PoolSize))
			return nil
		}
		var delay time.Duration
		switch {
		case IsIncompatible(err):
			delay = refusedBackoff.Delay(attempt)
			a.Logger.Error("the server refuses this agent's protocol version; upgrade the agent (or the server, as the message says)",
				slog.Int("agent_protocol", protocol.ProtocolVersion), slog.String("agent_version", a.Config.Version),
				slog.Any("err", err), slog.Duration("retry_in", delay))
		case IsRefused(err):
			delay = refusedBackoff.Delay(attempt)
			a.Logger.Error("registration refused by the server; check the registration token", slog.Any("err", err), slog.Duration("retry_in", delay))
		default:
			delay = networkBackoff.Delay(attempt)
			a.Logger.Warn("server not reachable; will retry registration", slog.Any("err", err), slog.Duration("retry_in", delay))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
}

// reserve long-polls once, after a backoff if the previous attempts failed,
// and sends the outcome to the Run loop.
func (a *Agent) reserve(ctx context.Context, failures int, msgs chan<- any) {
	if failures > 0 {
		select {
		case <-ctx.Done():
			msgs <- reserved{err: ctx.Err()}
			return
		case <-time.After(reserveBackoff.Delay(failures - 1)):
		}
	}
	res, parked, err := a.Client.Reserve(ctx, a.Config.ReserveWait)
	if err != nil || res == nil {
		msgs <- reserved{parked: parked, err: err}
		return
	}
	asg, err := a.open(res)
	if err != nil {
		a.rejectReservation(ctx, res, err)
		msgs <- reserved{}
		return
	}
	msgs <- reserved{a: asg}
}

// rejectReservation reports a reservation that did not open and verify:
// it is never run.
func (a *Agent) rejectReservation(ctx context.Context, res *protocol.Reservation, err error) {
	a.Logger.Error("reservation rejected", slog.String("step_id", res.StepID), slog.Int("attempt", res.Attempt), slog.Any("err", err))
	a.report(context.WithoutCancel(ctx), a.Logger.With(slog.String("step_id", res.StepID)), res.StepID,
		protocol.StepResult{Attempt: res.Attempt, LeaseID: res.LeaseID, Reason: engine.ReasonPayloadRejected, Error: err.Error()}, reportTimeout)
}

// open verifies and opens a reservation's sealed assignment, which must be
// for this agent, that step and that attempt.
func (a *Agent) open(res *protocol.Reservation) (*protocol.Assignment, error) {
	b := envelope.Binding{AgentID: a.Identity.ID, StepID: res.StepID, Attempt: res.Attempt}
	var plain []byte
	var err error
	switch res.Envelope {
	case "":
		plain, err = envelope.Open(a.Identity.HPKE, a.serverKey, b, res.Sealed)
	case protocol.EnvelopeSession:
		plain, err = a.opener().Open(b, res.Sealed)
	default:
		err = fmt.Errorf("%w: unknown envelope %q", envelope.ErrRejected, res.Envelope)
	}
	if err != nil {
		return nil, err
	}
	var asg protocol.Assignment
	if err := json.Unmarshal(plain, &asg); err != nil {
		return nil, fmt.Errorf("%w: %v", envelope.ErrRejected, err)
	}
	if asg.StepID != res.StepID || asg.Attempt != res.Attempt || asg.LeaseID != res.LeaseID {
		return nil, fmt.Errorf("%w: assignment is for step %s attempt %d lease %s", envelope.ErrRejected, asg.StepID, asg.Attempt, asg.LeaseID)
	}
	return &asg, nil
}

// opener returns the agent's opener of session envelopes, for the server
// key it registered with.
func (a *Agent) opener() *envelope.Opener {
	a.openerMu.Lock()
	defer a.openerMu.Unlock()
	if a.sessions == nil || !a.openerFor.Equal(a.serverKey) {
		a.sessions = envelope.NewOpener(a.Identity.HPKE, a.serverKey, a.Identity.ID)
		a.openerFor = a.serverKey
	}
	return a.sessions
}

// stoppedError is the cancel cause of steps the agent itself stops.
type stoppedError struct{ msg string }

func (e *stoppedError) Error() string { return e.msg }

// Refusal is an error the server answered deliberately (4xx): retrying the
// same request soon will not help.
type Refusal interface{ Refused() bool }

// IsIncompatible reports whether the server refused the agent's protocol
// version (426 Upgrade Required).
func IsIncompatible(err error) bool {
	var s interface{ HTTPStatus() int }
	return errors.As(err, &s) && s.HTTPStatus() == http.StatusUpgradeRequired
}

// IsRefused reports whether err is a deliberate refusal by the server.
func IsRefused(err error) bool {
	var r Refusal
	return errors.As(err, &r) && r.Refused()
}
