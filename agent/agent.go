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
	"time"

	"github.com/baton-ci/baton/shared/engine"
	"github.com/baton-ci/baton/shared/envelope"
	"github.com/baton-ci/baton/shared/protocol"
)

// ServerClient is the agent's view of the server's agent API.
type ServerClient interface {
	Register(ctx context.Context, req protocol.RegisterRequest) (protocol.RegisterResponse, error)
	// Reserve long-polls for a step; nil, nil means none came within wait.
	Reserve(ctx context.Context, wait time.Duration) (*protocol.Reservation, error)
	AppendLog(ctx context.Context, stepID string, attempt int, offset int64, data []byte) error
	Complete(ctx context.Context, stepID string, res protocol.StepResult) error
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
}

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
}

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

	remote    protocol.AgentConfig
	serverKey ed25519.PublicKey // signs reservations; from the registration answer
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
		a   *protocol.Assignment
		err error
	}
	stepDone struct{ stepID string }
)

// Run registers, then reserves and runs steps until ctx is done. Shutdown
// drains: no new reservations; running steps get the eviction time to finish,
// then are cancelled; their results are still reported.
func (a *Agent) Run(ctx context.Context) error {
	state := StateRegistering
	setState := func(e Event) {
		if next := Transition(state, e); next != state {
			a.Logger.Info("agent state", slog.String("from", string(state)), slog.String("to", string(next)))
			state = next
			if a.OnState != nil {
				a.OnState(state)
			}
		}
	}
	if err := a.register(ctx); err != nil {
		setState(EventShutdown)
		return err
	}
	setState(EventRegistered)

	// Steps run on their own context: shutdown stops taking work, it does
	// not kill steps; eviction does.
	stepCtx, killSteps := context.WithCancelCause(context.WithoutCancel(ctx))
	defer killSteps(&stoppedError{"agent stopped"})
	msgs := make(chan any)
	running := 0
	reserving := false
	failures := 0
	var eviction <-chan time.Time
	done := ctx.Done()
	poolSize := max(a.remote.PoolSize, 1)

	for {
		if state == StateReady && !reserving && running < poolSize {
			reserving = true
			go a.reserve(ctx, failures, msgs)
		}
		if state == StateDraining && running == 0 && !reserving {
			setState(EventIdle)
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
				case m.err != nil && ctx.Err() == nil:
					failures++
					a.Logger.Warn("reserve failed", slog.Any("err", m.err), slog.Int("failures", failures))
				case m.a != nil:
					failures = 0
					running++
					go a.runStep(stepCtx, m.a, msgs)
				default:
					failures = 0
				}
			case stepDone:
				running--
			}
		case <-done:
			done = nil // seen once; in-flight reservations see the cancel themselves
			if state == StateReady {
				setState(EventShutdown)
				a.Logger.Info("draining", slog.Int("running", running), slog.Duration("eviction", a.remote.EvictionTime))
				eviction = time.After(a.remote.EvictionTime)
			}
		case <-eviction:
			killSteps(&stoppedError{fmt.Sprintf("agent shut down: eviction time %s passed", a.remote.EvictionTime)})
		}
	}
}

// register retries until the server accepts the agent or ctx ends.
func (a *Agent) register(ctx context.Context) error {
	req := protocol.RegisterRequest{
		Token: a.Config.Token, AgentID: a.Identity.ID, Name: a.Config.Name, Version: a.Config.Version, Labels: a.Config.Labels,
		SigningKey: a.Identity.SigningPublic(), HPKEKey: a.Identity.HPKEPublic(),
	}
	for attempt := 0; ; attempt++ {
		resp, err := a.Client.Register(ctx, req)
		if err == nil {
			a.remote, a.serverKey = resp.Config, resp.ServerKey
			a.Logger.Info("registered", slog.Int("pool_size", resp.Config.PoolSize))
			return nil
		}
		var delay time.Duration
		if IsRefused(err) {
			delay = refusedBackoff.Delay(attempt)
			a.Logger.Error("registration refused by the server; check the registration token", slog.Any("err", err), slog.Duration("retry_in", delay))
		} else {
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
	res, err := a.Client.Reserve(ctx, a.Config.ReserveWait)
	if err != nil || res == nil {
		msgs <- reserved{err: err}
		return
	}
	asg, err := a.open(res)
	if err != nil {
		// Never run what does not open and verify: report it and move on.
		a.Logger.Error("reservation rejected", slog.String("step_id", res.StepID), slog.Int("attempt", res.Attempt), slog.Any("err", err))
		a.report(context.WithoutCancel(ctx), a.Logger.With(slog.String("step_id", res.StepID)), res.StepID,
			protocol.StepResult{Attempt: res.Attempt, Reason: engine.ReasonPayloadRejected, Error: err.Error()})
		msgs <- reserved{}
		return
	}
	msgs <- reserved{a: asg}
}

// open verifies and opens a reservation's sealed assignment, which must be
// for this agent, that step and that attempt.
func (a *Agent) open(res *protocol.Reservation) (*protocol.Assignment, error) {
	plain, err := envelope.Open(a.Identity.HPKE, a.serverKey,
		envelope.Binding{AgentID: a.Identity.ID, StepID: res.StepID, Attempt: res.Attempt}, res.Sealed)
	if err != nil {
		return nil, err
	}
	var asg protocol.Assignment
	if err := json.Unmarshal(plain, &asg); err != nil {
		return nil, fmt.Errorf("%w: %v", envelope.ErrRejected, err)
	}
	if asg.StepID != res.StepID || asg.Attempt != res.Attempt {
		return nil, fmt.Errorf("%w: assignment is for step %s attempt %d", envelope.ErrRejected, asg.StepID, asg.Attempt)
	}
	return &asg, nil
}

// stoppedError is the cancel cause of steps the agent itself stops.
type stoppedError struct{ msg string }

func (e *stoppedError) Error() string { return e.msg }

// Refusal is an error the server answered deliberately (4xx): retrying the
// same request soon will not help.
type Refusal interface{ Refused() bool }

// IsRefused reports whether err is a deliberate refusal by the server.
func IsRefused(err error) bool {
	var r Refusal
	return errors.As(err, &r) && r.Refused()
}
