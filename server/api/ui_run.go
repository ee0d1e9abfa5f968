package api

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/shared/engine"
)

type stepRow struct {
	Name, State, Reason, Waiting, Error, Agent, Duration, Approval string
	Attempt                                                        int
	ExitCode                                                       *int
	AwaitsApproval                                                 bool
}

type runPage struct {
	page
	Run                            *server.Run
	DAG                            dagView
	Timing                         timingView
	Steps                          []stepRow
	Selected                       string
	Audit                          []server.AuditEvent
	CanCancel, CanRetry, CanResume bool
}

func (s *Server) runPage(w http.ResponseWriter, r *http.Request) {
	run, err := s.Runs.FindRun(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		s.uiError(w, r, err)
		return
	}
	p := runPage{page: page{Title: "Run " + run.ID, Nav: "runs"}, Run: run, DAG: layoutDAG(run.Steps),
		Timing: layoutTiming(run, s.now()), Steps: s.stepRows(run),
		CanCancel: !run.State.Terminal(), CanRetry: run.State.Terminal(),
		CanResume: run.State == engine.RunFailed || run.State == engine.RunCancelled}
	p.Selected = r.URL.Query().Get("step")
	if p.Selected == "" {
		p.Selected = defaultStep(run)
	}
	if p.Audit, err = s.Audit.RunAudit(r.Context(), run.ID); err != nil {
		s.uiError(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "run", &p)
}

func (s *Server) stepRows(run *server.Run) []stepRow {
	out := make([]stepRow, 0, len(run.Steps))
	for _, st := range run.Steps {
		row := stepRow{Name: st.Name, State: string(st.State), Reason: string(st.Reason), Waiting: st.Waiting,
			Error: st.Error, Agent: st.AgentID, Attempt: st.Attempt, ExitCode: st.ExitCode,
			AwaitsApproval: st.State == engine.StepPending && st.Reason == engine.ReasonAwaitingApproval,
			Approval:       approvalMessage(st)}
		if st.StartedAt != nil {
			end := s.now()
			if st.FinishedAt != nil {
				end = *st.FinishedAt
			}
			row.Duration = humanDuration(end.Sub(*st.StartedAt))
		}
		out = append(out, row)
	}
	return out
}

// defaultStep is the step whose log the page opens with: a running one,
// else the last that started, else the first.
func defaultStep(run *server.Run) string {
	pick := ""
	for _, st := range run.Steps {
		if st.State == engine.StepRunning {
			return st.Name
		}
		if st.StartedAt != nil {
			pick = st.Name
		}
	}
	if pick == "" && len(run.Steps) > 0 {
		pick = run.Steps[0].Name
	}
	return pick
}
