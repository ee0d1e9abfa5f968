package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"sort"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/shared/runbook"
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
// With {env} in the path (PUT .../environments/{env}/secrets/{name}) the
// secret is the environment's: steps with environment: ENV get it instead
// of the project-wide one.
func (s *Server) putSecret(w http.ResponseWriter, r *http.Request) {
	project, name := chi.URLParam(r, "project"), chi.URLParam(r, "name")
	if err := validSecretSlot(project, name); err != nil {
		s.writeError(w, r, err)
		return
	}
	key, err := secretKey(r, name)
	if err != nil {
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
	if err := s.Secrets.PutSecret(r.Context(), project, key, s.Box.Seal(project, key, []byte(body.Value))); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.Logger.InfoContext(r.Context(), "secret set", slog.String("project", project), slog.String("secret", key))
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) deleteSecret(w http.ResponseWriter, r *http.Request) {
	project, name := chi.URLParam(r, "project"), chi.URLParam(r, "name")
	key, err := secretKey(r, name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.Secrets.DeleteSecret(r.Context(), project, key); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.Logger.InfoContext(r.Context(), "secret deleted", slog.String("project", project), slog.String("secret", name))
	w.WriteHeader(http.StatusNoContent)
}

// listSecrets returns the names of a project's secrets (or, with {env} in
// the path, of one environment's), never their values.
func (s *Server) listSecrets(w http.ResponseWriter, r *http.Request) {
	all, err := s.Secrets.SecretNames(r.Context(), chi.URLParam(r, "project"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	env := chi.URLParam(r, "env")
	names := make([]string, 0, len(all))
	for _, n := range all {
		switch e, name, scoped := strings.Cut(n, "/"); {
		case env == "" && !scoped && n != webhookSecretName && n != notifySecretName:
			names = append(names, n)
		case env != "" && scoped && e == env:
			names = append(names, name)
		}
	}
	writeJSON(w, http.StatusOK, map[string][]string{"names": names})
}

// secretKey is where a request's secret is kept: its name, or
// ENV/NAME for an environment's.
func secretKey(r *http.Request, name string) (string, error) {
	env := chi.URLParam(r, "env")
	if env == "" {
		return name, nil
	}
	if !runbook.EnvironmentNameRe.MatchString(env) {
		return "", server.Errorf(server.EINVALID, "environment %q: use 1 to 50 letters, digits, '-' or '_'", env)
	}
	return envSecretKey(env, name), nil
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

// checkSecrets refuses a run whose steps name secrets the project lacks
// (in the step's environment or project-wide).
func (s *Server) checkSecrets(ctx context.Context, run *server.Run) error {
	type need struct{ env, name string }
	needs := map[need]bool{}
	for _, st := range run.Steps {
		for _, n := range st.Secrets {
			needs[need{st.Environment, n}] = true
		}
	}
	if len(needs) == 0 {
		return nil
	}
	names, err := s.Secrets.SecretNames(ctx, run.Project)
	if err != nil {
		return err
	}
	have := make(map[string]bool, len(names))
	for _, n := range names {
		have[n] = true
	}
	var missing []string
	for nd := range needs {
		if !have[nd.name] && (nd.env == "" || !have[envSecretKey(nd.env, nd.name)]) {
			if nd.env != "" {
				missing = append(missing, nd.name+" (environment "+nd.env+")")
			} else {
				missing = append(missing, nd.name)
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	sort.Strings(missing)
	return server.Errorf(server.EINVALID, "project %q has no secret %s: set it with PUT /api/v1/projects/%s/secrets/NAME (or .../environments/ENV/secrets/NAME)",
		run.Project, strings.Join(missing, ", "), run.Project)
}

// envSecretKey is where a secret of an environment is kept among the
// project's secrets: "ENV/NAME" (neither part may hold a '/').
func envSecretKey(env, name string) string { return env + "/" + name }

// openSecretValues opens the named secrets of a project (environment env
// first, if any).
func (s *Server) openSecretValues(ctx context.Context, project, env string, names []string) (map[string]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	keys := append([]string{}, names...)
	if env != "" {
		for _, n := range names {
			keys = append(keys, envSecretKey(env, n))
		}
	}
	sealed, err := s.Secrets.SealedSecrets(ctx, project, keys)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(names))
	for _, n := range names {
		key := n
		if env != "" && sealed[envSecretKey(env, n)] != nil {
			key = envSecretKey(env, n)
		}
		v, ok := sealed[key]
		if !ok {
			return nil, fmt.Errorf("project %q has no secret %s (deleted after the run started?)", project, n)
		}
		value, err := s.Box.Open(project, key, v)
		if err != nil {
			return nil, err
		}
		out[n] = string(value)
	}
	return out, nil
}
