package api

import (
	"log/slog"
	"net/http"
	"net/url"

	"github.com/go-chi/chi/v5"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/shared/protocol"
)

// getProject answers a project's scheduling settings:
// GET /api/v1/projects/{project}.
func (s *Server) getProject(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "project")
	settings, err := s.Projects.ProjectSettings(r.Context(), name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, projectView(name, settings))
}

func projectView(name string, settings server.ProjectSettings) protocol.Project {
	v := protocol.Project{Name: name, MaxRunning: settings.MaxRunning, Weight: settings.Weight}
	v.Repository = repositoryView(settings)
	v.NotifyURL = settings.NotifyURL
	return v
}

// putProject sets a project's settings, creating the project:
// PUT /api/v1/projects/{project}. Weight defaults to 1.
func (s *Server) putProject(w http.ResponseWriter, r *http.Request) {
	var req protocol.Project
	if err := decodeJSON(r, 4<<10, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	name := chi.URLParam(r, "project")
	settings, err := projectSettings(name, req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.Projects.SetProjectSettings(r.Context(), name, settings); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.Wake.Notify() // a raised limit may free queued steps
	s.Logger.InfoContext(r.Context(), "project settings", slog.String("project", name),
		slog.Int("max_running", settings.MaxRunning), slog.Int("weight", settings.Weight))
	writeJSON(w, http.StatusOK, projectView(name, settings))
}

// createProject creates a project: POST /api/v1/projects with its name
// and settings; 409 if it exists.
func (s *Server) createProject(w http.ResponseWriter, r *http.Request) {
	var req protocol.Project
	if err := decodeJSON(r, 4<<10, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	settings, err := projectSettings(req.Name, req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.Projects.CreateProject(r.Context(), req.Name, settings); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.Logger.InfoContext(r.Context(), "project created", slog.String("project", req.Name))
	writeJSON(w, http.StatusCreated, projectView(req.Name, settings))
}

// projectSettings checks a project request.
func projectSettings(name string, req protocol.Project) (server.ProjectSettings, error) {
	if !projectNameRe.MatchString(name) {
		return server.ProjectSettings{}, server.Errorf(server.EINVALID, "project %q: use 1 to 100 letters, digits, '-', '_' or '.'", name)
	}
	if req.Weight == 0 {
		req.Weight = 1
	}
	settings := server.ProjectSettings{MaxRunning: req.MaxRunning, Weight: req.Weight}
	if repo := req.Repository; repo != nil {
		var err error
		if settings.RepoURL, settings.DefaultBranch, settings.RepoCredentials, err = repoSettings(repo); err != nil {
			return settings, err
		}
	}
	if req.NotifyURL != "" {
		u, err := url.Parse(req.NotifyURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return settings, server.Errorf(server.EINVALID, "notify_url %q: want an http(s) URL", req.NotifyURL)
		}
		settings.NotifyURL = req.NotifyURL
	}
	return settings, settings.Validate()
}
