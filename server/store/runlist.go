package store

import (
	"context"
	"fmt"
	"time"

	"github.com/baton-ci/baton/server"
)

var _ server.RunLister = (*DB)(nil)

// MaxRunPage is the most runs ListRuns returns at once.
const MaxRunPage = 200

// ListRuns returns one page of runs, newest first, in one indexed query.
func (s *DB) ListRuns(ctx context.Context, f server.RunFilter) ([]server.RunSummary, bool, error) {
	if f.Limit <= 0 || f.Limit > MaxRunPage {
		f.Limit = 50
	}
	if f.Offset < 0 {
		f.Offset = 0
	}
	q := s.r.WithContext(ctx).Table("runs r").Select(`r.id, p.name AS project, r.name, r.state, r."trigger",
		r.created_at, r.started_at, r.finished_at`).Joins("JOIN projects p ON p.id = r.project_id")
	if f.Project != "" {
		q = q.Where("p.name = ?", f.Project)
	}
	if f.State != "" {
		q = q.Where("r.state = ?", f.State)
	}
	var rows []struct {
		ID, Project, Name, State, Trigger string
		CreatedAt                         time.Time
		StartedAt, FinishedAt             *time.Time
	}
	if err := q.Order("r.created_at DESC, r.id DESC").Offset(f.Offset).Limit(f.Limit + 1).Scan(&rows).Error; err != nil {
		return nil, false, fmt.Errorf("list runs: %w", err)
	}
	more := len(rows) > f.Limit
	if more {
		rows = rows[:f.Limit]
	}
	out := make([]server.RunSummary, len(rows))
	for i, r := range rows {
		trigger := r.Trigger
		if trigger == "" {
			trigger = "api"
		}
		out[i] = server.RunSummary{ID: r.ID, Project: r.Project, Name: r.Name, State: r.State, Trigger: trigger,
			CreatedAt: r.CreatedAt.UTC(), StartedAt: utcPtr(r.StartedAt), FinishedAt: utcPtr(r.FinishedAt)}
	}
	return out, more, nil
}

// ProjectNames lists every project's name, sorted.
func (s *DB) ProjectNames(ctx context.Context) ([]string, error) {
	var names []string
	if err := s.r.WithContext(ctx).Model(&projectRow{}).Order("name").Pluck("name", &names).Error; err != nil {
		return nil, fmt.Errorf("project names: %w", err)
	}
	return names, nil
}

// RunningByAgent returns every running step by its agent, in one query.
func (s *DB) RunningByAgent(ctx context.Context) (map[string][]*server.Step, error) {
	var rows []stepRow
	if err := s.r.WithContext(ctx).Where(isRunning).Order("started_at").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("running steps: %w", err)
	}
	out := make(map[string][]*server.Step)
	for i := range rows {
		st, err := rows[i].domain()
		if err != nil {
			return nil, err
		}
		out[st.AgentID] = append(out[st.AgentID], st)
	}
	return out, nil
}
