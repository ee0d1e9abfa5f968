package api

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/shared/engine"
)

// agentRow is one agent on the fleet page.
type agentRow struct {
	ID, Name, Version string
	Labels            []string
	// State is the server's (enabled, disabled, draining, deleted);
	// Status what the badge says: ready, idle, disabled, draining, deleted.
	State, Status string
	Connected     bool
	LastSeen      time.Time
	LastSeenAge   string
	Running       []runningStep
	Pool          int
}

type runningStep struct {
	RunID, Step string
	Attempt     int
}

// agentStatus is the badge: the admin's wish, refined by the agent's work.
func agentStatus(a *server.Agent, running int) string {
	if a.State == server.AgentEnabled {
		if running > 0 {
			return "ready"
		}
		return "idle"
	}
	return string(a.State)
}

// fleet lists every agent with its running steps, in two queries.
func (s *Server) fleet(r *http.Request) ([]agentRow, error) {
	agents, err := s.Agents.ListAgents(r.Context())
	if err != nil {
		return nil, err
	}
	running, err := s.RunList.RunningByAgent(r.Context())
	if err != nil {
		return nil, err
	}
	now := s.now()
	out := make([]agentRow, 0, len(agents))
	for _, a := range agents {
		row := agentRow{ID: a.ID, Name: a.Name, Version: a.Version, Labels: a.Labels, State: string(a.State),
			Connected: s.Control.Connected(a.ID), LastSeen: a.LastSeen, LastSeenAge: humanAge(now.Sub(a.LastSeen)),
			Pool: s.configFor(a).PoolSize}
		for _, st := range running[a.ID] {
			row.Running = append(row.Running, runningStep{RunID: st.RunID, Step: st.Name, Attempt: st.Attempt})
		}
		row.Status = agentStatus(a, len(row.Running))
		out = append(out, row)
	}
	return out, nil
}

// agentsPerPage bounds the fleet page; filters and pages reach the rest.
const agentsPerPage = 100

type statusCount struct {
	Status string
	Count  int
}

// agentStatuses are the fleet filter's choices.
var agentStatuses = []string{"ready", "idle", "disabled", "draining", "deleted"}

type tokenRow struct {
	ID, Description string
	CreatedAt       time.Time
	ExpiresAt       *time.Time
	Uses, MaxUses   int
	Revoked         bool
}

type fleetPage struct {
	page
	Agents            []agentRow
	Total, Matching   int
	Counts            []statusCount
	Page              int
	HasPrev, HasNext  bool
	PrevURL, NextURL  string
	StateFilter       string
	LabelFilter       string
	States            []string
	Tokens            []tokenRow
	NewToken, Message string
}

func (s *Server) fleetPage(w http.ResponseWriter, r *http.Request) {
	s.renderFleet(w, r, http.StatusOK, "")
}

func (s *Server) renderFleet(w http.ResponseWriter, r *http.Request, status int, newToken string) {
	agents, err := s.fleet(r)
	if err != nil {
		s.uiError(w, r, err)
		return
	}
	q := r.URL.Query()
	p := fleetPage{page: page{Title: "Fleet", Nav: "fleet"}, Total: len(agents), States: agentStatuses,
		StateFilter: q.Get("state"), LabelFilter: strings.TrimSpace(q.Get("label")), NewToken: newToken, Page: 1}
	if n, err := strconv.Atoi(q.Get("page")); err == nil && n > 0 && n <= 10_000 {
		p.Page = n
	}
	counts := map[string]int{}
	first := (p.Page - 1) * agentsPerPage
	for _, a := range agents {
		counts[a.Status]++
		if p.StateFilter != "" && a.Status != p.StateFilter {
			continue
		}
		if p.LabelFilter != "" && !slices.ContainsFunc(a.Labels, func(l string) bool { return strings.Contains(l, p.LabelFilter) }) {
			continue
		}
		if p.Matching >= first && p.Matching < first+agentsPerPage {
			p.Agents = append(p.Agents, a)
		}
		p.Matching++
	}
	for _, st := range agentStatuses {
		p.Counts = append(p.Counts, statusCount{Status: st, Count: counts[st]})
	}
	pageURL := func(n int) string {
		return "/fleet?state=" + urlQueryEscape(p.StateFilter) + "&label=" + urlQueryEscape(p.LabelFilter) + "&page=" + strconv.Itoa(n)
	}
	p.HasPrev, p.HasNext = p.Page > 1, first+agentsPerPage < p.Matching
	p.PrevURL, p.NextURL = pageURL(p.Page-1), pageURL(p.Page+1)
	tokens, err := s.Agents.ListRegistrationTokens(r.Context())
	if err != nil {
		s.uiError(w, r, err)
		return
	}
	for _, t := range tokens {
		p.Tokens = append(p.Tokens, tokenRow{ID: t.ID, Description: t.Description, CreatedAt: t.CreatedAt,
			ExpiresAt: t.ExpiresAt, Uses: t.Uses, MaxUses: t.MaxUses, Revoked: t.RevokedAt != nil})
	}
	s.render(w, r, status, "fleet", &p)
}

type runsPage struct {
	page
	Runs               []server.RunSummary
	Projects           []string
	States             []engine.RunState
	Project, State     string
	Page               int
	PrevPage, NextPage int
	HasPrev, HasNext   bool
	FilterQuery        string
}

const runsPerPage = 50

func (s *Server) runsPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p := runsPage{page: page{Title: "Runs", Nav: "runs"}, Project: q.Get("project"), State: q.Get("state"),
		States: engine.RunStates(), Page: 1}
	if n, err := strconv.Atoi(q.Get("page")); err == nil && n > 0 && n <= 100_000 {
		p.Page = n
	}
	runs, more, err := s.RunList.ListRuns(r.Context(), server.RunFilter{Project: p.Project, State: p.State,
		Offset: (p.Page - 1) * runsPerPage, Limit: runsPerPage})
	if err != nil {
		s.uiError(w, r, err)
		return
	}
	if p.Projects, err = s.RunList.ProjectNames(r.Context()); err != nil {
		s.uiError(w, r, err)
		return
	}
	p.Runs, p.HasNext, p.HasPrev = runs, more, p.Page > 1
	p.PrevPage, p.NextPage = p.Page-1, p.Page+1
	p.FilterQuery = "project=" + urlQueryEscape(p.Project) + "&state=" + urlQueryEscape(p.State)
	s.render(w, r, http.StatusOK, "runs", &p)
}

type projectsPage struct {
	page
	Projects []string
}

func (s *Server) projectsPage(w http.ResponseWriter, r *http.Request) {
	names, err := s.RunList.ProjectNames(r.Context())
	if err != nil {
		s.uiError(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "projects", &projectsPage{page: page{Title: "Projects", Nav: "projects"}, Projects: names})
}

type projectPage struct {
	page
	Name       string
	Settings   server.ProjectSettings
	WebhookURL string
	HasSecret  bool
	Secrets    []string
	Schedules  []*server.Schedule
}

func (s *Server) projectPage(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "project")
	settings, err := s.Projects.ProjectSettings(r.Context(), name)
	if err != nil {
		s.uiError(w, r, err)
		return
	}
	p := projectPage{page: page{Title: "Project " + name, Nav: "projects"}, Name: name, Settings: settings}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	p.WebhookURL = scheme + "://" + r.Host + "/api/v1/hooks/github/" + url.PathEscape(name)
	names, err := s.Secrets.SecretNames(r.Context(), name)
	if err != nil {
		s.uiError(w, r, err)
		return
	}
	for _, n := range names {
		switch {
		case n == webhookSecretName:
			p.HasSecret = true
		case n != notifySecretName:
			p.Secrets = append(p.Secrets, n) // NAME, or ENV/NAME for an environment's
		}
	}
	if p.Schedules, err = s.Schedules.ListSchedules(r.Context(), name); err != nil {
		s.uiError(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "project", &p)
}
