package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/shared/protocol"
)

// maxTriggerDepth bounds chains of runs triggering runs, so a runbook that
// triggers itself cannot start runs forever.
const maxTriggerDepth = 5

// triggerRun starts a follow-up run from a running step (cacher trigger):
// POST /api/v1/agent/steps/{id}/trigger. The runbook is read from the
// triggering run's git source at its commit (with its includes), else from
// the files the run was started with; the new run builds the same source,
// and records the step that caused it.
func (s *Server) triggerRun(w http.ResponseWriter, r *http.Request) {
	var req protocol.TriggerRequest
	if err := decodeJSON(r, 64<<10, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	lease := server.Lease{StepID: chi.URLParam(r, "id"), AgentID: agentFrom(r.Context()).ID, Attempt: req.Attempt, ID: req.LeaseID}
	step, err := s.Dispatch.HeldStep(r.Context(), lease)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	parent, err := s.Runs.FindRun(r.Context(), step.RunID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if parent.Depth >= maxTriggerDepth {
		s.writeError(w, r, server.Errorf(server.ECONFLICT, "run %s is already %d triggers deep; the limit is %d", parent.ID, parent.Depth, maxTriggerDepth))
		return
	}
	run, err := s.followUp(r.Context(), parent, req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	run.Trigger, run.CausedBy, run.Depth = "step", parent.ID+"/"+step.Name, parent.Depth+1
	if parent.Untrusted {
		untrusted(run) // what untrusted code starts is untrusted too
	}
	if err := s.Runs.CreateRun(r.Context(), run); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.Wake.Notify()
	s.Logger.InfoContext(r.Context(), "run triggered by a step", slog.String("run_id", run.ID), slog.String("caused_by", run.CausedBy),
		slog.String("runbook", req.Runbook))
	writeJSON(w, http.StatusCreated, protocol.TriggerResponse{RunID: run.ID})
}

// followUp builds the run a trigger asks for.
func (s *Server) followUp(ctx context.Context, parent *server.Run, req protocol.TriggerRequest) (*server.Run, error) {
	params := make(map[string]any, len(req.Params))
	for k, v := range req.Params {
		params[k] = v // strings; the runbook's param types convert them
	}
	create := protocol.CreateRunRequest{Project: parent.Project, Params: params,
		Source: wireSource(parent.Source), CISource: wireSource(parent.CISource)}
	var load func(path string) ([]byte, error)
	if src := parent.Source; src != nil && src.Type == protocol.SourceGit && src.Commit != "" {
		fetchCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		var cred *protocol.GitCredentials
		if !parent.Untrusted {
			var err error
			if cred, err = s.projectRepoCredentials(ctx, parent.Project, src.URL); err != nil {
				return nil, server.Errorf(server.EUNAVAILABLE, "read %s: %v", req.Runbook, err)
			}
		}
		if err := s.Repos.Update(fetchCtx, src.URL, cred, src.Commit); err != nil {
			return nil, server.Errorf(server.EUNAVAILABLE, "read %s: %v", req.Runbook, err)
		}
		load = func(path string) ([]byte, error) { return s.Repos.Read(fetchCtx, src.URL, src.Commit, path) }
	} else {
		fromFiles := filesLoader(parent.Files)
		load = func(path string) ([]byte, error) {
			if path == "runbook.yml" {
				return []byte(parent.Runbook), nil
			}
			if b, err := fromFiles(path); err == nil {
				return b, nil
			}
			return nil, fmt.Errorf("%s: the run has no git source, and it was not among the files the run was started with", path)
		}
	}
	text, err := load(req.Runbook)
	if err != nil {
		return nil, server.Errorf(server.EINVALID, "trigger: %v", err)
	}
	create.Runbook = string(text)
	return s.newRunFrom(ctx, create, load, event{}) // on: is not checked: the step asked for it
}
