package api

import (
	"log/slog"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5/middleware"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/shared/protocol"
)

// auditAdmin records every admin request that changes something (any
// method but GET) and succeeded, as "METHOD PATH": tokens, agents,
// projects, secrets (by name; never a value), schedules and runs. Run
// decisions also get their own event with the comment.
func (s *Server) auditAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			next.ServeHTTP(w, r)
			return
		}
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		if ww.Status() >= 400 {
			return
		}
		e := server.AuditEvent{Actor: actorFrom(r), Action: r.Method + " " + r.URL.Path}
		if err := s.Audit.Audit(r.Context(), e); err != nil {
			s.Logger.ErrorContext(r.Context(), "audit", slog.String("action", e.Action), slog.Any("err", err))
		}
	})
}

// getAuditLog lists the latest admin actions, newest first:
// GET /api/v1/audit?limit=N (default 100, at most 1000).
func (s *Server) getAuditLog(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			s.writeError(w, r, server.Errorf(server.EINVALID, "limit %q: use 1 to 1000", v))
			return
		}
		limit = n
	}
	events, err := s.Audit.AuditLog(r.Context(), limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]protocol.AuditEvent, len(events))
	for i, e := range events {
		out[i] = protocol.AuditEvent{At: e.At, Actor: e.Actor, Action: e.Action, RunID: e.RunID, Step: e.Step, Comment: e.Comment}
	}
	writeJSON(w, http.StatusOK, out)
}
