package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/server/control"
	"github.com/baton-ci/baton/shared/protocol"
	"github.com/baton-ci/baton/shared/runbook"
)

var projectNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$`)

// createRun starts a run. The body is either JSON {"project", "runbook",
// "params"} or, with Content-Type application/yaml or text/*, the runbook
// itself with the project in ?project= and params in ?param.NAME=. With
// ?dry_run=true it answers 200 with the plan and starts nothing.
func (s *Server) createRun(w http.ResponseWriter, r *http.Request) {
	req, err := readCreateRun(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if dry, _ := strconv.ParseBool(r.URL.Query().Get("dry_run")); dry {
		rb, err := parseRunbook(req)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		plan, err := rb.Plan(req.Params)
		if err != nil {
			s.writeError(w, r, invalid("params", err))
			return
		}
		writeJSON(w, http.StatusOK, plan)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if len(key) > maxIdempotencyKey {
		s.writeError(w, r, server.Errorf(server.EINVALID, "Idempotency-Key is longer than %d characters", maxIdempotencyKey))
		return
	}
	run, err := s.newRun(r, req, event{Kind: runbook.TriggerAPI})
	var nt *notTaken
	if errors.As(err, &nt) {
		err = server.Errorf(server.EINVALID, "%s: this runbook is not started through the API", nt.why)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	run.IdempotencyKey = key
	s.startRun(w, r, run)
}

// maxIdempotencyKey bounds the Idempotency-Key header.
const maxIdempotencyKey = 200

// startRun stores a new run and answers 201 with it, or 200 with the run
// its idempotency key already started.
func (s *Server) startRun(w http.ResponseWriter, r *http.Request, run *server.Run) {
	err := s.Runs.CreateRun(r.Context(), run)
	if errors.Is(err, server.ErrRunExists) {
		existing, err := s.Runs.FindRun(r.Context(), run.ID)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, runView(existing))
		return
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.Wake.Notify()
	s.Logger.InfoContext(r.Context(), "run created", slog.String("run_id", run.ID), slog.String("project", run.Project),
		slog.String("trigger", run.Trigger), slog.Int("steps", len(run.Steps)))
	writeJSON(w, http.StatusCreated, runView(run))
}

// parseRunbook parses the request's runbook with the files it includes.
func parseRunbook(req protocol.CreateRunRequest) (*runbook.Runbook, error) {
	return parseRunbookFrom(req, filesLoader(req.Files))
}

// filesLoader reads includes from the files sent with a run.
func filesLoader(files map[string]string) func(path string) ([]byte, error) {
	return func(path string) ([]byte, error) {
		text, ok := files[path]
		if !ok {
			return nil, fmt.Errorf("not among the files sent with the run (files)")
		}
		return []byte(text), nil
	}
}

// parseRunbookFrom parses the request's runbook, reading includes with load.
func parseRunbookFrom(req protocol.CreateRunRequest, load func(path string) ([]byte, error)) (*runbook.Runbook, error) {
	if !projectNameRe.MatchString(req.Project) {
		return nil, server.Errorf(server.EINVALID, "project %q: use 1 to 100 letters, digits, '-', '_' or '.'", req.Project)
	}
	rb, err := runbook.ParseFiles("runbook.yml", []byte(req.Runbook), load)
	if err != nil {
		return nil, invalid("runbook", err)
	}
	return rb, nil
}

// newRun builds a run from a request: the runbook parsed and validated,
// params resolved, sources checked, secrets present.
func (s *Server) newRun(r *http.Request, req protocol.CreateRunRequest, on event) (*server.Run, error) {
	return s.newRunChecked(r.Context(), req, on)
}

// event is what starts a run, checked against the runbook's on: (Kind ""
// skips the check: a retry repeats a run that was taken).
type event struct{ Kind, Branch string }

// notTaken is a runbook whose on: does not take the event.
type notTaken struct{ why string }

func (e *notTaken) Error() string { return e.why }

// newRunChecked is newRun for a caller without a request (schedules,
// trust), reading includes from req.Files.
func (s *Server) newRunChecked(ctx context.Context, req protocol.CreateRunRequest, on event) (*server.Run, error) {
	return s.newRunFrom(ctx, req, filesLoader(req.Files), on)
}

// newRunFrom builds a run whose runbook's includes load reads (from a
// repository for webhooks and triggers); the run keeps the files sent and
// those read, for retries and triggers.
func (s *Server) newRunFrom(ctx context.Context, req protocol.CreateRunRequest, load func(path string) ([]byte, error), on event) (*server.Run, error) {
	files := make(map[string]string, len(req.Files)) // all that was sent, and what load read
	for k, v := range req.Files {
		files[k] = v
	}
	rb, err := parseRunbookFrom(req, func(path string) ([]byte, error) {
		b, err := load(path)
		if err == nil {
			files[path] = string(b)
		}
		return b, err
	})
	if err != nil {
		return nil, err
	}
	if on.Kind != "" {
		if ok, why := rb.On.Takes(on.Kind, on.Branch); !ok {
			return nil, &notTaken{why}
		}
	}
	params, err := rb.ResolveParams(req.Params)
	if err != nil {
		return nil, invalid("params", err)
	}
	for what, src := range map[string]*protocol.Source{"source": req.Source, "ci_source": req.CISource} {
		if err := src.Validate(what); err != nil {
			return nil, server.Errorf(server.EINVALID, "%v", err)
		}
	}
	run := &server.Run{Project: req.Project, Name: rb.Name, Params: params, Runbook: req.Runbook, Files: files,
		Source: domainSource(req.Source), CISource: domainSource(req.CISource)}
	for _, st := range rb.Steps {
		run.Steps = append(run.Steps, &server.Step{
			Name: st.Name, Image: rb.ImageFor(st), Command: st.Command, Args: st.Args, Env: rb.EnvFor(st),
			DependsOn: st.DependsOn, Timeout: rb.TimeoutFor(st), If: st.Condition(), Assert: st.Assert,
			RunsOn: rb.LabelsFor(st), Priority: st.Priority, Approval: st.Approval, Secrets: rb.SecretsFor(st), Environment: st.Environment,
			Memory: rb.ResourcesFor(st).Memory, NanoCPUs: rb.ResourcesFor(st).NanoCPUs,
			Retry: st.Retry,
		})
	}
	if err := s.checkSecrets(ctx, run); err != nil {
		return nil, err
	}
	return run, nil
}

// retryRun starts the whole of an ended run again as a new run, from the
// same runbook, files, params and sources: POST /api/v1/runs/{id}/retry.
func (s *Server) retryRun(w http.ResponseWriter, r *http.Request) {
	old, err := s.Runs.FindRun(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !old.State.Terminal() {
		s.writeError(w, r, server.Errorf(server.ECONFLICT, "run %s is %s; retry an ended run (or cancel it first)", old.ID, old.State))
		return
	}
	run, err := s.newRun(r, protocol.CreateRunRequest{Project: old.Project, Runbook: old.Runbook, Params: old.Params,
		Files: old.Files, Source: wireSource(old.Source), CISource: wireSource(old.CISource)}, event{})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	run.Trigger, run.RetryOf = "retry", old.ID
	if old.Untrusted {
		untrusted(run) // a retry is no way around the fork rules
	}
	s.audit(r, "retry", old.ID, "")
	s.startRun(w, r, run)
}

// invalid is a 400 for a runbook or params that do not check out, with
// one detail per problem.
func invalid(what string, err error) error {
	var details []string
	if errs, ok := err.(runbook.Errors); ok {
		details = errs.Strings()
	}
	return &server.Error{Code: server.EINVALID, Message: "invalid " + what + ": " + err.Error(), Details: details}
}

func readCreateRun(r *http.Request) (protocol.CreateRunRequest, error) {
	var req protocol.CreateRunRequest
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "application/json", "":
		err := decodeJSON(r, 4*runbook.MaxSize, &req) // the runbook and the files it includes
		return req, err
	case "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain":
		body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, runbook.MaxSize+1))
		if err != nil {
			return req, server.Errorf(server.EINVALID, "runbook body: %v", err)
		}
		req := protocol.CreateRunRequest{Project: r.URL.Query().Get("project"), Runbook: string(body)}
		for k, v := range r.URL.Query() {
			if name, ok := strings.CutPrefix(k, "param."); ok && len(v) > 0 {
				if req.Params == nil {
					req.Params = map[string]any{}
				}
				req.Params[name] = v[len(v)-1]
			}
		}
		return req, nil
	}
	return req, server.Errorf(server.EINVALID, "unsupported Content-Type %q: send application/json or application/yaml", mt)
}

func (s *Server) getRun(w http.ResponseWriter, r *http.Request) {
	run, err := s.Runs.FindRun(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, runView(run))
}

// maxComment bounds a decision's comment.
const maxComment = 2000

// actorFrom names who made a request; the admin token is the only identity
// until users exist (issue 8).
func actorFrom(r *http.Request) string {
	if sess := sessionFrom(r.Context()); sess != nil {
		return "ui:" + sess.User.Name // a web UI user (see ui_auth.go)
	}
	return "admin"
}

// getAudit lists who did what to a run: GET /api/v1/runs/{id}/audit.
func (s *Server) getAudit(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	if _, err := s.Runs.FindRun(r.Context(), id); err != nil {
		s.writeError(w, r, err)
		return
	}
	events, err := s.Audit.RunAudit(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]protocol.AuditEvent, len(events))
	for i, e := range events {
		out[i] = protocol.AuditEvent{At: e.At, Actor: e.Actor, Action: e.Action, Step: e.Step, Comment: e.Comment}
	}
	writeJSON(w, http.StatusOK, out)
}

// audit records an action on a run; a failure is logged, not returned
// (the action itself is done).
func (s *Server) audit(r *http.Request, action, runID, comment string) {
	if err := s.Audit.Audit(r.Context(), server.AuditEvent{Actor: actorFrom(r), Action: action, RunID: runID, Comment: comment}); err != nil {
		s.Logger.ErrorContext(r.Context(), "audit", slog.String("action", action), slog.Any("err", err))
	}
}

// decideApproval approves or rejects a step awaiting approval. Who may
// decide is the admin for now (issue 7 adds approvers).
func (s *Server) decideApproval(approve bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		runID, step := chi.URLParam(r, "id"), chi.URLParam(r, "name")
		var body protocol.Decision
		if r.ContentLength != 0 {
			if err := decodeJSON(r, 8<<10, &body); err != nil {
				s.writeError(w, r, err)
				return
			}
		}
		if len(body.Comment) > maxComment {
			s.writeError(w, r, server.Errorf(server.EINVALID, "comment is %d bytes; the limit is %d", len(body.Comment), maxComment))
			return
		}
		ready, err := s.Runs.DecideApproval(r.Context(), runID, step, approve, actorFrom(r), body.Comment)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.Wake.NotifyN(ready)
		s.Logger.InfoContext(r.Context(), "approval decided", slog.String("run_id", runID), slog.String("step", step),
			slog.Bool("approved", approve))
		run, err := s.Runs.FindRun(r.Context(), runID)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, runView(run))
	}
}

// resumeRun starts a failed run again from its failed steps.
func (s *Server) resumeRun(w http.ResponseWriter, r *http.Request) {
	run, err := s.Runs.ResumeRun(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.Wake.Notify()
	s.audit(r, "resume", run.ID, "")
	s.Logger.InfoContext(r.Context(), "run resumed", slog.String("run_id", run.ID))
	writeJSON(w, http.StatusOK, runView(run))
}

// cancelRun cancels a run: POST /api/v1/runs/{id}/cancel. Agents running
// its steps are hinted over their control channels; steps that became Ready
// (cleanup) wake waiting agents.
func (s *Server) cancelRun(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	agents, err := s.Runs.CancelRun(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	for _, a := range agents {
		s.Control.Notify(a, control.EventCancel)
	}
	s.Wake.Notify()
	s.audit(r, "cancel", id, "")
	s.Logger.InfoContext(r.Context(), "run cancelled", slog.String("run_id", id), slog.Int("agents_told", len(agents)))
	s.getRun(w, r)
}

func (s *Server) getStepLog(w http.ResponseWriter, r *http.Request) {
	attempt := 0
	if v := r.URL.Query().Get("attempt"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			s.writeError(w, r, server.Errorf(server.EINVALID, "attempt %q: use a positive number", v))
			return
		}
		attempt = n
	}
	log, times, err := s.Runs.StepLogTimes(r.Context(), chi.URLParam(r, "id"), chi.URLParam(r, "name"), attempt)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if v := r.URL.Query().Get("timestamps"); v == "true" || v == "1" {
		log = withTimestamps(log, times)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Write(log)
}

func approvalMessage(st *server.Step) string {
	if st.Approval == nil || !st.Approval.Required {
		return ""
	}
	if st.Approval.Message == "" {
		return "approve to run " + st.Name
	}
	return st.Approval.Message
}

func runView(run *server.Run) protocol.Run {
	v := protocol.Run{
		ID: run.ID, Project: run.Project, Name: run.Name, Params: run.Params, State: run.State,
		Trigger: run.Trigger, RetryOf: run.RetryOf, Error: run.Error, CausedBy: run.CausedBy, Untrusted: run.Untrusted, Source: wireSource(run.Source), CISource: wireSource(run.CISource),
		CreatedAt: run.CreatedAt, StartedAt: run.StartedAt, FinishedAt: run.FinishedAt,
		Steps: make([]protocol.Step, len(run.Steps)),
	}
	for i, st := range run.Steps {
		deps := st.DependsOn
		if deps == nil {
			deps = []string{}
		}
		v.Steps[i] = protocol.Step{
			Name: st.Name, State: st.State, DependsOn: deps, RunsOn: st.RunsOn, Priority: st.Priority,
			ApprovalMessage: approvalMessage(st),
			Image:           st.Image, ExitCode: st.ExitCode, Reason: st.Reason, Waiting: st.Waiting,
			Error: st.Error, Attempt: st.Attempt, StartedAt: st.StartedAt, FinishedAt: st.FinishedAt, AgentID: st.AgentID,
			Outputs: st.Outputs, Attempts: make([]protocol.Attempt, len(st.Attempts)),
		}
		for j, a := range st.Attempts {
			v.Steps[i].Attempts[j] = protocol.Attempt{
				Attempt: a.Attempt, State: a.State, AgentID: a.AgentID, ExitCode: a.ExitCode, Reason: a.Reason,
				Error: a.Error, StartedAt: a.StartedAt, FinishedAt: a.FinishedAt,
			}
		}
	}
	return v
}

// domainSource converts a wire source ("none" and absent are nil).
func domainSource(src *protocol.Source) *server.Source {
	if src.Empty() {
		return nil
	}
	return &server.Source{Type: src.Type, URL: src.URL, Ref: src.Ref, Commit: src.Commit, Path: src.Path}
}

// wireSource converts a stored source.
func wireSource(src *server.Source) *protocol.Source {
	if src == nil {
		return nil
	}
	return &protocol.Source{Type: src.Type, URL: src.URL, Ref: src.Ref, Commit: src.Commit, Path: src.Path}
}
