package api

import (
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"sort"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/baton-ci/baton/server"
)

// Limits on secrets: values shorter than this would mask too much of every
// log; longer ones do not belong in environment variables.
const (
	minSecretLength = 6
	maxSecretLength = 64 << 10
)

var secretNameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,99}$`)

// putSecret stores a project secret, sealed: PUT
// /api/v1/projects/{project}/secrets/{name} with {"value": "..."}.
func (s *Server) putSecret(w http.ResponseWriter, r *http.Request) {
	project, name := chi.URLParam(r, "project"), chi.URLParam(r, "name")
	if err := validSecretSlot(project, name); err != nil {
		s.writeError(w, r, err)
		return
	}
	var body struct {
		Value string `json:"value"`
	}
	if err := decodeJSON(r, 2*maxSecretLength, &body); err != nil {
		s.writeError(w, r, err)
		return
	}
	if n := len(body.Value); n < minSecretLength || n > maxSecretLength {
		s.writeError(w, r, server.Errorf(server.EINVALID,
			"secret value is %d bytes: use %d to %d (shorter values cannot be masked in logs without hiding ordinary text)", n, minSecretLength, maxSecretLength))
		return
	}
	if err := s.Secrets.PutSecret(r.Context(), project, name, s.Box.Seal(project, name, []byte(body.Value))); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.Logger.InfoContext(r.Context(), "secret set", slog.String("project", project), slog.String("secret", name))
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) deleteSecret(w http.ResponseWriter, r *http.Request) {
	project, name := chi.URLParam(r, "project"), chi.URLParam(r, "name")
	if err := s.Secrets.DeleteSecret(r.Context(), project, name); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.Logger.InfoContext(r.Context(), "secret deleted", slog.String("project", project), slog.String("secret", name))
	w.WriteHeader(http.StatusNoContent)
}

// listSecrets returns the names of a project's secrets, never their values.
func (s *Server) listSecrets(w http.ResponseWriter, r *http.Request) {
	names, err := s.Secrets.SecretNames(r.Context(), chi.URLParam(r, "project"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string][]string{"names": names})
}

func validSecretSlot(project, name string) error {
	switch {
	case !projectNameRe.MatchString(project):
		return server.Errorf(server.EINVALID, "project %q: use 1 to 100 letters, digits, '-', '_' or '.'", project)
	case !secretNameRe.MatchString(name) || name == "CI" || strings.HasPrefix(name, "BATON"):
		return server.Errorf(server.EINVALID, "secret name %q: a variable name (letters, digits, '_'), not CI or BATON*", name)
	}
	return nil
}

// checkSecrets refuses a run whose steps name secrets the project lacks.
func (s *Server) checkSecrets(r *http.Request, run *server.Run) error {
	need := map[string]bool{}
	for _, st := range run.Steps {
		for _, n := range st.Secrets {
			need[n] = true
		}
	}
	if len(need) == 0 {
		return nil
	}
	have, err := s.Secrets.SecretNames(r.Context(), run.Project)
	if err != nil {
		return err
	}
	for _, n := range have {
		delete(need, n)
	}
	if len(need) == 0 {
		return nil
	}
	missing := make([]string, 0, len(need))
	for n := range need {
		missing = append(missing, n)
	}
	sort.Strings(missing)
	return server.Errorf(server.EINVALID, "project %q has no secret %s: set it with PUT /api/v1/projects/%s/secrets/NAME",
		run.Project, strings.Join(missing, ", "), run.Project)
}

// openSecrets returns a reserved step's secret values.
func (s *Server) openSecrets(r *http.Request, project string, names []string) (map[string]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	sealed, err := s.Secrets.SealedSecrets(r.Context(), project, names)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(names))
	for _, n := range names {
		v, ok := sealed[n]
		if !ok {
			return nil, fmt.Errorf("project %q has no secret %s (deleted after the run started?)", project, n)
		}
		value, err := s.Box.Open(project, n, v)
		if err != nil {
			return nil, err
		}
		out[n] = string(value)
	}
	return out, nil
}
