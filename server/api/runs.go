package api

import (
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
	if !projectNameRe.MatchString(req.Project) {
		s.writeError(w, r, server.Errorf(server.EINVALID, "project %q: use 1 to 100 letters, digits, '-', '_' or '.'", req.Project))
		return
	}
	rb, err := runbook.ParseFiles("runbook.yml", []byte(req.Runbook), func(path string) ([]byte, error) {
		text, ok := req.Files[path]
		if !ok {
			return nil, fmt.Errorf("not among the files sent with the run (files)")
		}
		return []byte(text), nil
	})
	if err != nil {
		s.writeError(w, r, invalid("runbook", err))
		return
	}
	if dry, _ := strconv.ParseBool(r.URL.Query().Get("dry_run")); dry {
		plan, err := rb.Plan(req.Params)
		if err != nil {
			s.writeError(w, r, invalid("params", err))
			return
		}
		writeJSON(w, http.StatusOK, plan)
		return
	}
	params, err := rb.ResolveParams(req.Params)
	if err != nil {
		s.writeError(w, r, invalid("params", err))
		return
	}
	run := &server.Run{Project: req.Project, Name: rb.Name, Params: params, Runbook: req.Runbook}
	for _, st := range rb.Steps {
		run.Steps = append(run.Steps, &server.Step{
			Name: st.Name, Image: rb.ImageFor(st), Command: st.Command, Args: st.Args, Env: rb.EnvFor(st),
			DependsOn: st.DependsOn, Timeout: rb.TimeoutFor(st), If: st.Condition(), Assert: st.Assert,
			RunsOn: rb.LabelsFor(st), Priority: st.Priority, Approval: st.Approval, Secrets: rb.SecretsFor(st),
			Retry: st.Retry,
		})
	}
	if err := s.checkSecrets(r, run); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.Runs.CreateRun(r.Context(), run); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.Wake.Notify()
	s.Logger.InfoContext(r.Context(), "run created", slog.String("run_id", run.ID), slog.String("project", run.Project),
		slog.Int("steps", len(run.Steps)))
	writeJSON(w, http.StatusCreated, runView(run))
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

// decideApproval approves or rejects a step awaiting approval. Who may
// decide is the admin for now (issue 7 adds approvers).
func (s *Server) decideApproval(approve bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		runID, step := chi.URLParam(r, "id"), chi.URLParam(r, "name")
		ready, err := s.Runs.DecideApproval(r.Context(), runID, step, approve, "admin")
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if ready > 0 {
			s.Wake.Notify()
		}
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
	s.Logger.InfoContext(r.Context(), "run resumed", slog.String("run_id", run.ID))
	writeJSON(w, http.StatusOK, runView(run))
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
	log, err := s.Runs.StepLog(r.Context(), chi.URLParam(r, "id"), chi.URLParam(r, "name"), attempt)
	if err != nil {
		s.writeError(w, r, err)
		return
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
			Image:           st.Image, ExitCode: st.ExitCode, Reason: st.Reason,
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
