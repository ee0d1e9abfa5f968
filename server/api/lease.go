package api

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/shared/protocol"
)

// renewLease extends the lease on a running step and tells the agent
// whether to stop it: POST /api/v1/agent/steps/{id}/lease. A stale lease
// (expired and re-queued, or the step ended) is 409: the agent must stop.
func (s *Server) renewLease(w http.ResponseWriter, r *http.Request) {
	var req protocol.LeaseRequest
	if err := decodeJSON(r, 4<<10, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.LeaseID == "" {
		s.writeError(w, r, server.Errorf(server.EINVALID, "lease_id is required"))
		return
	}
	lease := server.Lease{StepID: chi.URLParam(r, "id"), AgentID: agentFrom(r.Context()).ID, Attempt: req.Attempt, ID: req.LeaseID}
	renewal, err := s.Dispatch.RenewLease(r.Context(), lease, s.AgentConfig.LeaseLength)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, protocol.Lease{ExpiresAt: renewal.Expires, Cancel: renewal.Cancel})
}

// ExpireLeases ends, until ctx is done, the running steps whose agents
// stopped renewing their leases or that ran past their deadline, checking
// about four times per lease length (jittered, so replicas do not query in
// lockstep), and wakes waiting agents for the steps that became Ready.
func (s *Server) ExpireLeases(ctx context.Context) {
	every := max(s.AgentConfig.LeaseLength/4, 100*time.Millisecond)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(every/2 + rand.N(every)):
		}
		exp, err := s.Dispatch.ExpireSteps(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.Logger.ErrorContext(ctx, "expire leases", slog.Any("err", err))
			}
			continue
		}
		for _, e := range exp.Ended {
			s.Logger.WarnContext(ctx, "step ended by the server: lease expired", slog.String("run_id", e.RunID),
				slog.String("step_id", e.StepID), slog.String("step", e.Step), slog.String("agent_id", e.AgentID),
				slog.Int("attempt", e.Attempt), slog.String("reason", string(e.Reason)))
		}
		if exp.Lost+exp.TimedOut > 0 {
			s.Logger.WarnContext(ctx, "steps ended by the server", slog.Int("agent_lost", exp.Lost),
				slog.Int("timed_out", exp.TimedOut), slog.Int("ready", exp.Ready))
		}
		s.Wake.NotifyN(exp.Ready)
	}
}
