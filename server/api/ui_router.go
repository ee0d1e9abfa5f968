package api

import (
	"net/http"

	"github.com/go-chi/chi/v5"
)

// uiRouter is the web UI: the login and setup pages, the static files, and
// behind a session the pages, their live streams and their actions (CSRF
// token and the admin role for every state change). It is mounted as the
// router's catch-all; see docs/ui.md.
func (s *Server) uiRouter() http.Handler {
	r := chi.NewRouter()
	r.Handle("/static/*", http.StripPrefix("/static", s.UI))
	if s.Users == nil || s.RunList == nil {
		return r
	}
	r.Get("/login", s.loginPage)
	r.Post("/login", s.login)
	r.Get("/setup", s.setupPage)
	r.Post("/setup", s.setupPage)
	r.Group(func(r chi.Router) {
		r.Use(s.requireSession, s.requireCSRF, s.requireRole)
		r.Get("/", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/fleet", http.StatusSeeOther) })
		r.Post("/logout", s.logout)
		r.Get("/fleet", s.fleetPage)
		r.Get("/runs", s.runsPage)
		r.Get("/runs/{id}", s.runPage)
		r.Get("/projects", s.projectsPage)
		r.Get("/projects/{project}", s.projectPage)
		r.Get("/ui/events/fleet", s.fleetEvents)
		r.Get("/ui/events/runs/{id}", s.runEvents)
		r.Get("/ui/runs/{id}/steps/{name}/log", s.uiLog)
		r.Get("/ui/runs/{id}/steps/{name}/download", s.uiLogDownload)
		r.Post("/ui/agents/{id}/{action}", s.uiAgentAction)
		r.Post("/ui/tokens", s.uiCreateToken)
		r.Post("/ui/tokens/{id}/revoke", s.uiRevokeToken)
		r.Post("/ui/runs", s.uiCreateRun)
		r.Post("/ui/runs/{id}/{action}", s.uiRunAction)
		r.Post("/ui/runs/{id}/steps/{name}/{decision}", s.uiDecide)
		r.Post("/ui/projects/{project}/settings", s.uiProjectSettings)
		r.Post("/ui/projects/{project}/webhook-secret", s.uiWebhookSecret)
		r.Post("/ui/projects/{project}/secrets", s.uiPutSecret)
		r.Post("/ui/projects/{project}/secrets/{name}/delete", s.uiDeleteSecret)
	})
	// Unknown paths too send a visitor without a session to the login page.
	r.NotFound(s.requireSession(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.uiFail(w, r, http.StatusNotFound, "no such page")
	})).ServeHTTP)
	return r
}
