package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/server/control"
	"github.com/baton-ci/baton/shared/engine"
	"github.com/baton-ci/baton/shared/envelope"
	"github.com/baton-ci/baton/shared/protocol"
	"github.com/baton-ci/baton/shared/runbook"
)

// maxLogChunk bounds one log upload.
const maxLogChunk = 1 << 20

// rescanEvery is the safety-net rescan of a waiting long-poll, in case a wake
// was lost; the jitter keeps waiting agents from querying in lockstep.
const rescanEvery = 5 * time.Second

// DefaultParkAfter is how long an idle agent's reserve poll is held before
// it is parked (Server.ParkAfter): long enough that a busy agent between
// steps keeps its poll, short enough that an idle fleet holds none.
const DefaultParkAfter = 5 * time.Second

// reserve is the agent's long-poll: it answers 200 with an Assignment as soon
// as a step is reserved for the agent, or 204 when ?wait (default and cap
// protocol.MaxReserveWait) passes with nothing to do.
func (s *Server) reserve(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	agent := agentFrom(ctx)
	wait := protocol.MaxReserveWait
	if v := r.URL.Query().Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			s.writeError(w, r, server.Errorf(server.EINVALID, "wait %q: use a duration such as 30s", v))
			return
		}
		wait = min(d, protocol.MaxReserveWait)
	}
	if err := s.touch(ctx, agent); err != nil {
		s.writeError(w, r, err)
		return
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	// An agent with its control channel here may park instead of holding
	// this poll when nothing comes for ParkAfter (protocol.HeaderParked).
	var parkAt <-chan time.Time
	if s.ParkAfter > 0 && r.URL.Query().Get("park") == "1" {
		after := min(wait, s.ParkAfter)
		if s.Wake.IsParked(agent.ID) {
			// Parked and not hinted since: its periodic look. It goes back
			// to being parked after one look rather than hold a poll.
			after = 0
		}
		t := time.NewTimer(after)
		defer t.Stop()
		parkAt = t.C
	}
	// held is the hop count of a wake this poll got and has not used: it
	// is passed on when the poll takes no step, so another agent gets to
	// look. A parked agent's poll starts with the wake it was hinted with.
	held := s.Wake.Unpark(agent.ID)
	var waiter *Waiter
	// release unregisters the current waiter, keeping a wake that reached
	// it meanwhile.
	release := func() {
		if waiter == nil {
			return
		}
		waiter.Stop()
		select {
		case h := <-waiter.C():
			if h > held {
				held = h
			}
		default:
		}
		waiter = nil
	}
	defer func() {
		release()
		if held >= 0 && s.anyDue(ctx) {
			s.Wake.Pass(held, nil)
		}
	}()
	for first := true; ; first = false {
		release()
		waiter = s.Wake.Wait()
		// An admin may disable the agent while it waits: after the first
		// round (requireAgent just read it), ask again each time. (The
		// reservation itself refuses an agent that is not enabled.)
		cur := agent
		if !first {
			var err error
			if cur, err = s.Agents.RecentAgent(ctx, agent.ID); err != nil {
				s.writeError(w, r, err)
				return
			}
		}
		if cur.State != server.AgentEnabled {
			s.writeError(w, r, server.Errorf(server.ECONFLICT, "agent is %s: it takes no work", cur.State))
			return
		}
		res, err := s.reserveOne(ctx, agent, "")
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if res != nil {
			held = -1 // the wake was used
			writeJSON(w, http.StatusOK, res)
			return
		}
		if held >= 0 {
			// Nothing here for this agent: if a step is there for others
			// (labels, limits), let the next look.
			if s.anyDue(ctx) {
				s.Wake.Pass(held, waiter)
			}
			held = -1
		}
		pause := rescanEvery/2 + rand.N(rescanEvery)
		// A step waiting out a retry delay wakes nobody: wait for it too.
		if next, err := s.Dispatch.NextRetryAt(ctx); err == nil && !next.IsZero() {
			pause = min(pause, max(time.Until(next), time.Millisecond))
		}
		rescan := time.NewTimer(pause)
		select {
		case held = <-waiter.C():
			waiter = nil // woken: no longer registered
		case <-rescan.C:
			release()
		case <-deadline.C:
			rescan.Stop()
			w.WriteHeader(http.StatusNoContent)
			return
		case <-parkAt:
			rescan.Stop()
			parkAt = nil
			agentID := agent.ID
			if !s.Control.Connected(agentID) {
				continue // no channel here to hint it on: hold the poll
			}
			s.Wake.Park(agentID, func() bool { return s.Control.TryDeliver(agentID, control.EventWork) })
			if release(); held >= 0 {
				// Woken meanwhile: look again, and hold the poll from now.
				s.Wake.Unpark(agentID)
				continue
			}
			w.Header().Set(protocol.HeaderParked, "1")
			if r.ProtoMajor == 1 {
				// An idle agent keeps its control channel only; over
				// HTTP/2 the connection is the control channel's.
				w.Header().Set("Connection", "close")
			}
			w.WriteHeader(http.StatusNoContent)
			return
		case <-ctx.Done():
			rescan.Stop()
			// The agent hung up, or the server is shutting down: tell it to
			// come back (to this or another replica) after a pause.
			s.writeError(w, r, server.Errorf(server.EUNAVAILABLE, "server is shutting down"))
			return
		}
		rescan.Stop()
	}
}

// anyDue reports whether some step is ready for some agent now; true when
// it cannot tell, so a wake is passed on rather than lost.
func (s *Server) anyDue(ctx context.Context) bool {
	n, err := s.Dispatch.DueSteps(ctx, 1)
	return err != nil || n > 0
}

// reserveOne reserves the agent's next step (under leaseID, or a fresh
// lease when empty) and seals its assignment; nil when there is none.
func (s *Server) reserveOne(ctx context.Context, agent *server.Agent, leaseID string) (*protocol.Reservation, error) {
	return s.handOut(ctx, agent, leaseID, nil, nil)
}

// handOut seals the assignment of step, reserved for agent (nil: reserve
// one under leaseID first). A step whose secrets or credentials cannot be
// opened is failed at once rather than handed out without them, and
// another is reserved in its place.
func (s *Server) handOut(ctx context.Context, agent *server.Agent, leaseID string, step *server.Step, run *server.Run) (*protocol.Reservation, error) {
	for {
		if step == nil {
			var err error
			if step, run, err = s.Dispatch.ReserveStepAs(ctx, agent.ID, leaseID, s.AgentConfig.LeaseLength); err != nil || step == nil {
				return nil, err
			}
		}
		s.Metrics.ObserveDispatch(step.ReadyAt, time.Now())
		res, err := s.assign(ctx, agent, step, run)
		if err == nil {
			s.Logger.InfoContext(ctx, "step reserved", slog.String("run_id", step.RunID), slog.String("step_id", step.ID),
				slog.String("step", step.Name), slog.String("agent_id", agent.ID), slog.Int("attempt", step.Attempt))
			return res, nil
		}
		s.Logger.ErrorContext(ctx, "step cannot be handed out", slog.String("step_id", step.ID), slog.Any("err", err))
		if _, cerr := s.Dispatch.CompleteStep(ctx, server.StepResult{StepID: step.ID, AgentID: agent.ID,
			Attempt: step.Attempt, LeaseID: step.LeaseID, Reason: engine.ReasonInfra, Error: err.Error()}); cerr != nil {
			return nil, cerr
		}
		step = nil
	}
}

// nextLease is the lease id of the step handed out with the result of the
// attempt held under leaseID: derived, so a retried report finds the step
// the lost answer carried (LeasedStep) and hands it out again.
func nextLease(leaseID string) string {
	return uuid.NewSHA1(nextLeaseSpace, []byte(leaseID)).String()
}

var nextLeaseSpace = uuid.MustParse("6f1c2a36-9d0e-4b8e-a6a4-3c1f0e2d7b95")

// nextStep seals the step a completion reserved for its agent (done.Next).
func (s *Server) nextStep(ctx context.Context, agent *server.Agent, leaseID string, done server.Completion) (*protocol.Reservation, error) {
	if done.Next == nil || done.NextErr != nil {
		return nil, done.NextErr
	}
	return s.handOut(ctx, agent, leaseID, done.Next, done.NextRun)
}

// assign seals a reserved step's assignment for its agent, with its
// secrets and the repository credentials it may have.
func (s *Server) assign(ctx context.Context, agent *server.Agent, step *server.Step, run *server.Run) (*protocol.Reservation, error) {
	secrets, err := s.openSecretValues(ctx, run.Project, step.Environment, step.Secrets)
	if err != nil {
		return nil, err
	}
	srcCred, ciCred, credMask, err := s.sourceCredentials(ctx, run)
	if err != nil {
		return nil, err
	}
	s.maskers.put(step.ID, step.Attempt, secrets, credMask)
	s.names.put(step.ID, step.Attempt, step.RunID, step.Name)
	asg := protocol.Assignment{
		StepID: step.ID, RunID: step.RunID, Project: run.Project, StepName: step.Name, Attempt: step.Attempt,
		LeaseID: step.LeaseID, Source: wireSource(run.Source), CISource: wireSource(run.CISource), Image: step.Image, Command: step.Command, Args: step.Args, Env: step.Env, Secrets: secrets, Timeout: step.Timeout, Memory: step.Memory, NanoCPUs: step.NanoCPUs,
		SourceCredentials: srcCred, CISourceCredentials: ciCred,
	}
	plain, err := json.Marshal(asg)
	if err != nil {
		return nil, err
	}
	res := &protocol.Reservation{StepID: step.ID, RunID: step.RunID, Attempt: step.Attempt, LeaseID: step.LeaseID}
	b := envelope.Binding{AgentID: agent.ID, StepID: step.ID, Attempt: step.Attempt}
	if sessions, _ := ctx.Value(sessionsKey).(bool); sessions {
		res.Sealed, err = s.envelopes().Seal(agent.HPKEKey, b, plain)
		res.Envelope = protocol.EnvelopeSession
	} else {
		res.Sealed, err = envelope.Seal(s.SigningKey, agent.HPKEKey, b, plain)
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

// appendLog stores a chunk of a running step's output:
// POST /api/v1/agent/steps/{id}/log?attempt=N&lease=ID&offset=BYTES[&times=...]
// with the raw bytes; times are the chunk's line times (protocol.FormatLineTimes).
func (s *Server) appendLog(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	attempt, err1 := strconv.Atoi(q.Get("attempt"))
	offset, err2 := strconv.ParseInt(q.Get("offset"), 10, 64)
	if err1 != nil || err2 != nil || offset < 0 {
		s.writeError(w, r, server.Errorf(server.EINVALID, "attempt and offset query parameters must be non-negative integers"))
		return
	}
	lease := server.Lease{StepID: chi.URLParam(r, "id"), AgentID: agentFrom(r.Context()).ID, Attempt: attempt, ID: q.Get("lease")}
	if lease.ID == "" {
		s.writeError(w, r, server.Errorf(server.EINVALID, "the lease query parameter is required"))
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxLogChunk))
	if err != nil {
		s.writeError(w, r, server.Errorf(server.EINVALID, "log chunk: %v (limit %d bytes)", err, maxLogChunk))
		return
	}
	chunk, err := s.logAppend(r.Context(), lease, offset, data, q.Get("times"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.Dispatch.AppendLog(r.Context(), lease, chunk.Offset, chunk.Data, chunk.Times, chunk.Redact); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// logAppend checks a chunk of output an agent sends (its size and line
// times) and readies it for storing with the step's masking.
func (s *Server) logAppend(ctx context.Context, lease server.Lease, offset int64, data []byte, times string) (server.LogAppend, error) {
	if offset < 0 || len(data) > maxLogChunk {
		return server.LogAppend{}, server.Errorf(server.EINVALID, "log chunk at offset %d of %d bytes: the offset must not be negative and the limit is %d bytes",
			offset, len(data), maxLogChunk)
	}
	parsed, err := protocol.ParseLineTimes(times, len(data))
	if err != nil {
		return server.LogAppend{}, server.Errorf(server.EINVALID, "times: %v", err)
	}
	redact, err := s.redactorFor(ctx, lease)
	if err != nil {
		return server.LogAppend{}, err
	}
	return server.LogAppend{Offset: offset, Data: data, Times: protocol.FormatLineTimes(parsed), Redact: redact}, nil
}

// completeStep records a step's result and wakes agents for any steps that
// became Ready.
func (s *Server) completeStep(w http.ResponseWriter, r *http.Request) {
	var res protocol.StepResult
	// Room for the largest outputs JSON-escaped (a newline becomes two
	// bytes) and the largest log chunk in base64.
	if err := decodeJSON(r, 4*runbook.MaxOutputBytes+2*maxLogChunk, &res); err != nil {
		s.writeError(w, r, err)
		return
	}
	if res.Reason != "" && !res.Reason.Valid() {
		s.writeError(w, r, server.Errorf(server.EINVALID, "reason %q is not a failure reason", res.Reason))
		return
	}
	if err := validOutputs(res.Outputs); err != nil {
		s.writeError(w, r, err)
		return
	}
	if res.LeaseID == "" {
		s.writeError(w, r, server.Errorf(server.EINVALID, "lease_id is required"))
		return
	}
	agent := agentFrom(r.Context())
	stepID := chi.URLParam(r, "id")
	lease := server.Lease{StepID: stepID, AgentID: agent.ID, Attempt: res.Attempt, ID: res.LeaseID}
	result := server.StepResult{
		StepID: stepID, AgentID: agent.ID, Attempt: res.Attempt, LeaseID: res.LeaseID, ExitCode: res.ExitCode,
		Reason: res.Reason, Error: res.Error, Outputs: res.Outputs,
	}
	if res.Log != nil {
		chunk, err := s.logAppend(r.Context(), lease, res.Log.Offset, res.Log.Data, res.Log.Times)
		switch server.ErrorCode(err) {
		case "":
			result.Log = &chunk
		case server.ECONFLICT, server.ENOTFOUND:
			// Not the current lease (a retried report, or a stale one):
			// no log is stored; the completion answers for itself.
		case server.EINVALID:
			// The result still counts; the chunk is lost, and said so.
			s.Logger.WarnContext(r.Context(), "log chunk with a step result refused", slog.String("step_id", stepID),
				slog.String("agent_id", agent.ID), slog.Any("err", err))
		default:
			s.writeError(w, r, err)
			return
		}
	}
	// For the log line: which run and step (a stale lease finds none).
	held := s.stepNameOf(r.Context(), lease)
	// The agent's next step, if it asked for one and may take work, is
	// reserved once the result is recorded.
	var done server.Completion
	var err error
	if res.Next && agent.State == server.AgentEnabled {
		done, err = s.Dispatch.CompleteAndReserve(r.Context(), result, nextLease(res.LeaseID), s.AgentConfig.LeaseLength)
	} else {
		done.Ready, err = s.Dispatch.CompleteStep(r.Context(), result)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.maskers.drop(stepID, res.Attempt)
	ready := done.Ready
	next, err := s.nextStep(r.Context(), agent, nextLease(res.LeaseID), done)
	if err != nil {
		// The result is recorded: the agent polls for work as usual.
		s.Logger.ErrorContext(r.Context(), "reserve with completion", slog.String("agent_id", agent.ID), slog.Any("err", err))
		next = nil
	}
	if next != nil {
		ready-- // one of the steps made ready, or an older one: taken
	}
	s.Wake.NotifyN(ready)
	attrs := []any{slog.String("step_id", stepID), slog.String("agent_id", agent.ID), slog.Int("attempt", res.Attempt)}
	if held.runID != "" {
		attrs = append(attrs, slog.String("run_id", held.runID), slog.String("step", held.name))
	}
	if res.ExitCode != nil {
		attrs = append(attrs, slog.Int("exit_code", *res.ExitCode))
	}
	if res.Reason != "" {
		attrs = append(attrs, slog.String("reason", string(res.Reason)))
	}
	if res.Error != "" {
		attrs = append(attrs, slog.String("error", res.Error))
	}
	s.Logger.InfoContext(r.Context(), "step finished", attrs...)
	if next != nil {
		writeJSON(w, http.StatusOK, protocol.CompleteResponse{Next: next})
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// validOutputs applies the runbook limits to outputs an agent reports.
func validOutputs(outputs map[string]string) error {
	if len(outputs) > runbook.MaxOutputs {
		return server.Errorf(server.EINVALID, "%d outputs; the limit is %d", len(outputs), runbook.MaxOutputs)
	}
	size := 0
	for k, v := range outputs {
		size += len(k) + len(v)
		parsed, problems := runbook.ParseOutputs([]byte(k + "=x"))
		if len(problems) > 0 || len(parsed) != 1 {
			return server.Errorf(server.EINVALID, "output name %q is not valid", k)
		}
	}
	if size > runbook.MaxOutputBytes {
		return server.Errorf(server.EINVALID, "outputs are %d bytes; the limit is %d", size, runbook.MaxOutputBytes)
	}
	return nil
}
