// Package api is the server's HTTP interface, built on chi: the admin API
// (admin bearer token), the agent API (short-lived agent JWTs), the
// unauthenticated probes, and the embedded UI, each mounted in Router.
package api

import (
	"context"
	"crypto/ed25519"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/server/control"
	"github.com/baton-ci/baton/server/metrics"
	"github.com/baton-ci/baton/server/secretbox"
	"github.com/baton-ci/baton/shared/envelope"
	"github.com/baton-ci/baton/shared/protocol"
)

// Server holds what the handlers need. Every field is required except UI
// and the artifact fields.
type Server struct {
	Runs     server.RunStore
	Dispatch server.Dispatcher
	Agents   server.AgentStore
	Secrets  server.SecretStore
	Projects server.ProjectStore
	Hooks    server.HookStore
	// Notifications is the outbox of signed state-change webhooks.
	Notifications server.NotificationStore
	// Queue reports the ready steps by labels.
	Queue server.QueueStore
	// Audit keeps who did what to runs.
	Audit server.AuditStore
	// Schedules keeps cron schedules (see RunSchedules).
	Schedules server.ScheduleStore
	// Repos reads runbooks from project repositories for webhooks.
	Repos RepoReader
	// Box seals project secrets at rest.
	Box        *secretbox.Box
	AdminToken string
	// SigningKey signs agent access tokens.
	SigningKey  ed25519.PrivateKey
	AgentConfig protocol.AgentConfig
	Wake        *Wake
	Logger      *slog.Logger
	// UI serves the web UI's static files under /static/; nil serves no UI.
	UI http.Handler
	// Users and RunList back the web UI's pages (ui_*.go); when either is
	// nil only the static files are served.
	Users   server.UserStore
	RunList server.RunLister
	// Control is the agents' control channel.
	Control *control.Hub
	// ParkAfter is how long a reserve poll that asked to park waits for a
	// step before the agent is parked (protocol.HeaderParked); 0: agents
	// are never parked.
	ParkAfter time.Duration
	// Ping, if set, is what /readyz checks (the database answers).
	Ping func(context.Context) error
	// Artifacts and ArtifactFiles keep what steps store with cacher; when
	// either is nil the artifact routes answer 503.
	Artifacts     server.ArtifactStore
	ArtifactFiles ArtifactFiles
	// ArtifactMaxBytes bounds one artifact (0: DefaultArtifactMaxBytes).
	ArtifactMaxBytes int64
	// SeenResolution is how stale an agent's last_seen may get before a
	// call from it is written down (0: DefaultSeenResolution). Writing it on
	// every reserve and state call cost a write transaction per step.
	SeenResolution time.Duration
	// ArtifactRetention is how long a run's artifacts are kept after it
	// finished (0: DefaultArtifactRetention).
	ArtifactRetention time.Duration
	artifactLocks     keyLocks
	// Metrics serves /metrics and counts what the handlers do; nil: Router
	// makes one from the stores and the hub.
	Metrics *metrics.Metrics

	// minAgentProtocol overrides protocol.MinAgentProtocol (tests).
	minAgentProtocol int

	now      func() time.Time
	tokens   tokenCache
	maskers  maskers
	logins   loginLimiter
	names    stepNames
	hookWake chan struct{}

	sessionsOnce sync.Once
	sessions     *envelope.Sessions // session envelopes, keyed by agent
}

// envelopes returns the server's session envelopes (SigningKey signs them).
func (s *Server) envelopes() *envelope.Sessions {
	s.sessionsOnce.Do(func() { s.sessions = envelope.NewSessions(s.SigningKey) })
	return s.sessions
}

// Router returns the complete HTTP handler.
func (s *Server) Router() http.Handler {
	if s.now == nil {
		s.now = time.Now
	}
	if s.hookWake == nil {
		s.hookWake = make(chan struct{}, 1)
	}
	r := chi.NewRouter()
	r.Use(middleware.RequestID, middleware.Recoverer)

	r.Get("/livez", s.live)
	r.Get("/readyz", s.ready)
	if s.Metrics == nil {
		s.Metrics = metrics.New(metrics.Config{Store: s.Queue, Hub: s.Control, Logger: s.Logger})
	}
	r.With(s.requireAdmin).Get("/metrics", s.Metrics.ServeHTTP)

	r.Route("/api/v1", func(r chi.Router) {
		r.NotFound(func(w http.ResponseWriter, r *http.Request) {
			s.writeError(w, r, server.Errorf(server.ENOTFOUND, "no API route %s", r.URL.Path))
		})
		r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusMethodNotAllowed, protocol.Error{Error: r.Method + " is not allowed on " + r.URL.Path})
		})
		r.Group(func(r chi.Router) {
			r.Use(s.requireAdmin, s.auditAdmin)
			r.Post("/registration-tokens", s.createRegistrationToken)
			r.Get("/registration-tokens", s.listRegistrationTokens)
			r.Delete("/registration-tokens/{id}", s.revokeRegistrationToken)
			r.Post("/runs", s.createRun)
			r.Get("/runs", s.listRuns)
			r.Get("/runs/{id}", s.getRun)
			r.Post("/runs/{id}/resume", s.resumeRun)
			r.Post("/runs/{id}/cancel", s.cancelRun)
			r.Post("/runs/{id}/retry", s.retryRun)
			r.Get("/runs/{id}/audit", s.getAudit)
			r.Post("/runs/{id}/trust", s.trustRun)
			r.Get("/queue", s.getQueue)
			r.Get("/audit", s.getAuditLog)
			r.Post("/runs/{id}/steps/{name}/approve", s.decideApproval(true))
			r.Post("/runs/{id}/steps/{name}/reject", s.decideApproval(false))
			r.Get("/runs/{id}/steps/{name}/log", s.getStepLog)
			r.Post("/projects", s.createProject)
			r.Get("/projects/{project}", s.getProject)
			r.Put("/projects/{project}", s.putProject)
			r.Put("/projects/{project}/webhook-secret", s.putHiddenSecret(webhookSecretName, "webhook secret"))
			r.Put("/projects/{project}/notify-secret", s.putHiddenSecret(notifySecretName, "notify secret"))
			r.Get("/projects/{project}/schedules", s.listSchedules)
			r.Put("/projects/{project}/schedules/{name}", s.putSchedule)
			r.Delete("/projects/{project}/schedules/{name}", s.deleteSchedule)
			r.Get("/projects/{project}/secrets", s.listSecrets)
			r.Put("/projects/{project}/secrets/{name}", s.putSecret)
			r.Delete("/projects/{project}/secrets/{name}", s.deleteSecret)
			r.Get("/projects/{project}/environments/{env}/secrets", s.listSecrets)
			r.Put("/projects/{project}/environments/{env}/secrets/{name}", s.putSecret)
			r.Delete("/projects/{project}/environments/{env}/secrets/{name}", s.deleteSecret)
			r.Get("/agents", s.listAgents)
			r.Get("/agents/{id}", s.getAgent)
			r.Post("/agents/{id}/enable", s.setAgentState(server.AgentEnabled))
			r.Post("/agents/{id}/disable", s.setAgentState(server.AgentDisabled))
			r.Post("/agents/{id}/drain", s.setAgentState(server.AgentDraining))
			r.Delete("/agents/{id}", s.setAgentState(server.AgentDeleted))
			r.Put("/agents/{id}/config", s.setAgentSettings)
			r.Post("/fleet/{command}", s.fleetCommand)
			r.Get("/openapi.json", s.openAPI)
		})
		// Webhooks authenticate by the delivery's signature.
		r.Post("/hooks/{provider}/{project}", s.receiveHook)
		r.Route("/agent", func(r chi.Router) {
			r.Post("/register", s.register)
			r.Post("/token", s.issueToken)
			r.Group(func(r chi.Router) {
				r.Use(s.requireAgent)
				r.Post("/reserve", s.reserve)
				r.Get("/events", s.events)
				r.Get("/state", s.agentState)
				r.Post("/steps/{id}/log", s.appendLog)
				r.Post("/steps/{id}/complete", s.completeStep)
				r.Post("/steps/{id}/lease", s.renewLease)
				r.Post("/steps/{id}/trigger", s.triggerRun)
				r.Put("/steps/{id}/artifacts/*", s.putArtifact)
				r.Get("/steps/{id}/artifacts/*", s.getArtifact)
				r.Delete("/steps/{id}/artifacts/*", s.deleteArtifact)
			})
		})
	})
	if s.UI != nil {
		r.Handle("/*", s.uiRouter())
	}
	return r
}

// live answers while the process serves HTTP.
func (s *Server) live(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ok\n"))
}

// ready answers 200 when the server can do its work: the database answers.
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	if s.Ping != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.Ping(ctx); err != nil {
			s.Logger.WarnContext(r.Context(), "not ready", slog.Any("err", err))
			http.Error(w, "database not reachable", http.StatusServiceUnavailable)
			return
		}
	}
	s.live(w, r)
}
