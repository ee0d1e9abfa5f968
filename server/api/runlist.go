package api

import (
	"net/http"
	"strconv"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/shared/engine"
	"github.com/baton-ci/baton/shared/protocol"
)

// maxRunListLimit bounds one page of GET /api/v1/runs.
const maxRunListLimit = 200

// listRuns lists runs newest first, one page at a time:
// GET /api/v1/runs?project=&state=&limit=&offset=.
func (s *Server) listRuns(w http.ResponseWriter, r *http.Request) {
	if s.RunList == nil {
		s.writeError(w, r, server.Errorf(server.EUNAVAILABLE, "this server does not list runs"))
		return
	}
	q := r.URL.Query()
	f := server.RunFilter{Project: q.Get("project"), State: q.Get("state"), Limit: 50}
	if f.State != "" && !validRunState(f.State) {
		s.writeError(w, r, server.Errorf(server.EINVALID, "state %q: use one of %v", f.State, engine.RunStates()))
		return
	}
	var err error
	if v := q.Get("limit"); v != "" {
		if f.Limit, err = strconv.Atoi(v); err != nil || f.Limit < 1 || f.Limit > maxRunListLimit {
			s.writeError(w, r, server.Errorf(server.EINVALID, "limit %q: use 1 to %d", v, maxRunListLimit))
			return
		}
	}
	if v := q.Get("offset"); v != "" {
		if f.Offset, err = strconv.Atoi(v); err != nil || f.Offset < 0 || f.Offset > 1_000_000 {
			s.writeError(w, r, server.Errorf(server.EINVALID, "offset %q: use 0 to 1000000", v))
			return
		}
	}
	runs, more, err := s.RunList.ListRuns(r.Context(), f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := protocol.RunList{Runs: make([]protocol.RunSummary, len(runs)), More: more}
	for i, run := range runs {
		out.Runs[i] = protocol.RunSummary{ID: run.ID, Project: run.Project, Name: run.Name, Trigger: run.Trigger,
			State: engine.RunState(run.State), CreatedAt: run.CreatedAt, StartedAt: run.StartedAt, FinishedAt: run.FinishedAt}
	}
	writeJSON(w, http.StatusOK, out)
}

func validRunState(s string) bool {
	for _, st := range engine.RunStates() {
		if string(st) == s {
			return true
		}
	}
	return false
}
