package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/shared/protocol"
)

// The UI's state changes reuse the admin API's handlers: each action
// builds the API request, runs the handler in process (so the same checks,
// control hints and audit events apply, with the user as actor), and turns
// the answer into a redirect (forms) or JSON (the page's script).

// recorder keeps an in-process API answer.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (rec *recorder) Header() http.Header { return rec.header }
func (rec *recorder) Write(b []byte) (int, error) {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return rec.body.Write(b)
}
func (rec *recorder) WriteHeader(code int) {
	if rec.status == 0 {
		rec.status = code
	}
}

// callAPI runs an admin API handler with path parameters and a JSON body.
func callAPI(r *http.Request, h http.HandlerFunc, params map[string]string, body any) *recorder {
	var b []byte
	if body != nil {
		b, _ = json.Marshal(body)
	}
	rctx := chi.NewRouteContext()
	for k, v := range params {
		rctx.URLParams.Add(k, v)
	}
	req := r.Clone(context.WithValue(r.Context(), chi.RouteCtxKey, rctx))
	req.Body = io.NopCloser(bytes.NewReader(b))
	req.ContentLength = int64(len(b))
	req.Header.Set("Content-Type", "application/json")
	rec := &recorder{header: http.Header{}}
	h(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return rec
}

// finish answers a UI action from the API's answer: on success a redirect
// to back (or JSON for scripts), else the API's error message.
func (s *Server) finish(w http.ResponseWriter, r *http.Request, rec *recorder, back string) {
	if rec.status >= 400 {
		var e protocol.Error
		if json.Unmarshal(rec.body.Bytes(), &e) != nil || e.Error == "" {
			e.Error = http.StatusText(rec.status)
		}
		if len(e.Details) > 0 {
			e.Error += ": " + strings.Join(e.Details, "; ")
		}
		s.uiFail(w, r, rec.status, e.Error)
		return
	}
	ev := server.AuditEvent{Actor: actorFrom(r), Action: r.Method + " " + r.URL.Path}
	if err := s.Audit.Audit(r.Context(), ev); err != nil {
		s.Logger.ErrorContext(r.Context(), "audit", slog.String("action", ev.Action), slog.Any("err", err))
	}
	if b := safeNext(r.PostFormValue("back")); b != "" {
		back = b
	}
	if wantsJSON(r) {
		securityHeaders(w)
		writeJSON(w, http.StatusOK, map[string]string{"ok": "true", "redirect": back})
		return
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}

func (s *Server) uiAgentAction(w http.ResponseWriter, r *http.Request) {
	states := map[string]server.AgentState{"enable": server.AgentEnabled, "disable": server.AgentDisabled,
		"drain": server.AgentDraining, "delete": server.AgentDeleted}
	state, ok := states[chi.URLParam(r, "action")]
	if !ok {
		s.uiFail(w, r, http.StatusNotFound, "no such agent action")
		return
	}
	rec := callAPI(r, s.setAgentState(state), map[string]string{"id": chi.URLParam(r, "id")}, nil)
	s.finish(w, r, rec, "/fleet")
}

func (s *Server) uiCreateToken(w http.ResponseWriter, r *http.Request) {
	req := protocol.CreateRegistrationTokenRequest{Description: strings.TrimSpace(r.PostFormValue("description")),
		ExpiresIn: strings.TrimSpace(r.PostFormValue("expires_in"))}
	if v := strings.TrimSpace(r.PostFormValue("max_uses")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			s.uiFail(w, r, http.StatusBadRequest, "max uses must be a number")
			return
		}
		req.MaxUses = n
	}
	rec := callAPI(r, s.createRegistrationToken, nil, req)
	if rec.status >= 400 {
		s.finish(w, r, rec, "/fleet")
		return
	}
	var tok protocol.RegistrationToken
	if err := json.Unmarshal(rec.body.Bytes(), &tok); err != nil {
		s.uiError(w, r, err)
		return
	}
	s.audit(r, "create registration token", "", tok.ID)
	// Shown once, on this answer only: never redirect it into a URL.
	s.renderFleet(w, r, http.StatusCreated, tok.Token)
}

func (s *Server) uiRevokeToken(w http.ResponseWriter, r *http.Request) {
	s.finish(w, r, callAPI(r, s.revokeRegistrationToken, map[string]string{"id": chi.URLParam(r, "id")}, nil), "/fleet")
}

func (s *Server) uiRunAction(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	handlers := map[string]http.HandlerFunc{"cancel": s.cancelRun, "retry": s.retryRun, "resume": s.resumeRun}
	h, ok := handlers[chi.URLParam(r, "action")]
	if !ok {
		s.uiFail(w, r, http.StatusNotFound, "no such run action")
		return
	}
	rec := callAPI(r, h, map[string]string{"id": id}, nil)
	back := "/runs/" + id
	if rec.status < 400 {
		var run protocol.Run
		if json.Unmarshal(rec.body.Bytes(), &run) == nil && run.ID != "" {
			back = "/runs/" + run.ID // a retry is a new run
		}
	}
	s.finish(w, r, rec, back)
}

func (s *Server) uiDecide(w http.ResponseWriter, r *http.Request) {
	id, step := chi.URLParam(r, "id"), chi.URLParam(r, "name")
	approve := chi.URLParam(r, "decision") == "approve"
	if !approve && chi.URLParam(r, "decision") != "reject" {
		s.uiFail(w, r, http.StatusNotFound, "decide approve or reject")
		return
	}
	rec := callAPI(r, s.decideApproval(approve), map[string]string{"id": id, "name": step},
		protocol.Decision{Comment: strings.TrimSpace(r.PostFormValue("comment"))})
	s.finish(w, r, rec, "/runs/"+id+"?step="+urlQueryEscape(step))
}

// uiCreateRun starts a run from a runbook pasted into the runs page.
func (s *Server) uiCreateRun(w http.ResponseWriter, r *http.Request) {
	req := protocol.CreateRunRequest{Project: strings.TrimSpace(r.PostFormValue("project")),
		Runbook: strings.ReplaceAll(r.PostFormValue("runbook"), "\r\n", "\n")}
	rec := callAPI(r, s.createRun, nil, req)
	back := "/runs"
	if rec.status < 400 {
		var run protocol.Run
		if json.Unmarshal(rec.body.Bytes(), &run) == nil && run.ID != "" {
			back = "/runs/" + run.ID
		}
	}
	s.finish(w, r, rec, back)
}

func (s *Server) uiProjectSettings(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "project")
	cur, err := s.Projects.ProjectSettings(r.Context(), name)
	if err != nil {
		s.uiError(w, r, err)
		return
	}
	req := projectView(name, cur)
	req.Name = ""
	atoi := func(field string, into *int) bool {
		v := strings.TrimSpace(r.PostFormValue(field))
		if v == "" {
			return true
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			s.uiFail(w, r, http.StatusBadRequest, field+" must be a number")
			return false
		}
		*into = n
		return true
	}
	if !atoi("max_running", &req.MaxRunning) || !atoi("weight", &req.Weight) {
		return
	}
	if repo := strings.TrimSpace(r.PostFormValue("repo_url")); repo != "" {
		req.Repository = &protocol.Repository{URL: repo, DefaultBranch: strings.TrimSpace(r.PostFormValue("default_branch"))}
	}
	s.finish(w, r, callAPI(r, s.putProject, map[string]string{"project": name}, req), "/projects/"+url.PathEscape(name))
}

func (s *Server) uiWebhookSecret(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "project")
	rec := callAPI(r, s.putHiddenSecret(webhookSecretName, "webhook secret"), map[string]string{"project": name},
		map[string]string{"value": r.PostFormValue("value")})
	s.finish(w, r, rec, "/projects/"+url.PathEscape(name))
}

func (s *Server) uiPutSecret(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "project")
	rec := callAPI(r, s.putSecret, map[string]string{"project": name, "name": strings.TrimSpace(r.PostFormValue("name"))},
		map[string]string{"value": r.PostFormValue("value")})
	s.finish(w, r, rec, "/projects/"+url.PathEscape(name))
}

func (s *Server) uiDeleteSecret(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "project")
	rec := callAPI(r, s.deleteSecret, map[string]string{"project": name, "name": chi.URLParam(r, "name")}, nil)
	s.finish(w, r, rec, "/projects/"+url.PathEscape(name))
}
