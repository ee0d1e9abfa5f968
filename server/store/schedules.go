package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/baton-ci/baton/server"
)

var _ server.ScheduleStore = (*DB)(nil)

type scheduleRow struct {
	ID        string
	ProjectID string
	Name      string
	Cron      string
	Timezone  string
	Branch    string
	Runbook   string
	Params    string
	NextAt    int64
	LastRunID string
	CreatedAt time.Time
}

func (scheduleRow) TableName() string { return "schedules" }

func (r *scheduleRow) domain(project string) (*server.Schedule, error) {
	s := &server.Schedule{ID: r.ID, Project: project, Name: r.Name, Cron: r.Cron, Timezone: r.Timezone, Branch: r.Branch,
		Runbook: r.Runbook, NextAt: time.UnixMilli(r.NextAt).UTC(), LastRunID: r.LastRunID, CreatedAt: r.CreatedAt.UTC()}
	if err := json.Unmarshal([]byte(r.Params), &s.Params); err != nil {
		return nil, fmt.Errorf("params of schedule %s: %w", r.ID, err)
	}
	return s, nil
}

// PutSchedule creates or replaces a schedule (by project and name).
func (s *DB) PutSchedule(ctx context.Context, sch *server.Schedule) error {
	params := sch.Params
	if params == nil {
		params = map[string]any{}
	}
	paramsJSON, err := json.Marshal(params)
	if err != nil {
		return err
	}
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		projectID, err := s.ensureProject(tx, sch.Project)
		if err != nil {
			return err
		}
		sch.ID, sch.CreatedAt = uuid.Must(uuid.NewV7()).String(), s.now()
		row := scheduleRow{ID: sch.ID, ProjectID: projectID, Name: sch.Name, Cron: sch.Cron, Timezone: sch.Timezone,
			Branch: sch.Branch, Runbook: sch.Runbook, Params: string(paramsJSON), NextAt: sch.NextAt.UnixMilli(), CreatedAt: sch.CreatedAt}
		if err := tx.Clauses(clause.OnConflict{
			Columns:   []clause.Column{{Name: "project_id"}, {Name: "name"}},
			DoUpdates: clause.AssignmentColumns([]string{"cron", "timezone", "branch", "runbook", "params", "next_at"}),
		}).Create(&row).Error; err != nil {
			return fmt.Errorf("put schedule: %w", err)
		}
		var kept scheduleRow // a replaced schedule keeps its id
		if err := tx.Where("project_id = ? AND name = ?", projectID, sch.Name).Take(&kept).Error; err != nil {
			return err
		}
		sch.ID, sch.CreatedAt = kept.ID, kept.CreatedAt.UTC()
		return nil
	})
}

// ListSchedules returns a project's schedules by name.
func (s *DB) ListSchedules(ctx context.Context, project string) ([]*server.Schedule, error) {
	var rows []scheduleRow
	if err := s.db.WithContext(ctx).Raw(`SELECT s.* FROM schedules s JOIN projects p ON p.id = s.project_id WHERE p.name = ? ORDER BY s.name`,
		project).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("schedules of %s: %w", project, err)
	}
	out := make([]*server.Schedule, 0, len(rows))
	for i := range rows {
		sch, err := rows[i].domain(project)
		if err != nil {
			return nil, err
		}
		out = append(out, sch)
	}
	return out, nil
}

// DeleteSchedule removes a schedule.
func (s *DB) DeleteSchedule(ctx context.Context, project, name string) error {
	res := s.db.WithContext(ctx).Exec(`DELETE FROM schedules WHERE name = ? AND project_id = (SELECT id FROM projects WHERE name = ?)`, name, project)
	if res.Error != nil {
		return fmt.Errorf("delete schedule: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return server.Errorf(server.ENOTFOUND, "project %q has no schedule %q", project, name)
	}
	return nil
}

// DueSchedules returns the schedules whose next tick has come.
func (s *DB) DueSchedules(ctx context.Context, now time.Time) ([]*server.Schedule, error) {
	db := s.db.WithContext(ctx)
	var rows []scheduleRow
	if err := db.Where("next_at <= ?", now.UnixMilli()).Order("next_at").Limit(100).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("due schedules: %w", err)
	}
	out := make([]*server.Schedule, 0, len(rows))
	names := map[string]string{}
	for i := range rows {
		name, ok := names[rows[i].ProjectID]
		if !ok {
			var p projectRow
			if err := db.Where("id = ?", rows[i].ProjectID).Take(&p).Error; err != nil {
				return nil, fmt.Errorf("project of schedule %s: %w", rows[i].ID, err)
			}
			name, names[rows[i].ProjectID] = p.Name, p.Name
		}
		sch, err := rows[i].domain(name)
		if err != nil {
			return nil, err
		}
		out = append(out, sch)
	}
	return out, nil
}

// ClaimTick moves next_at from due to next only if it still is due.
func (s *DB) ClaimTick(ctx context.Context, id string, due, next time.Time) (bool, error) {
	res := s.db.WithContext(ctx).Exec(`UPDATE schedules SET next_at = ? WHERE id = ? AND next_at = ?`, next.UnixMilli(), id, due.UnixMilli())
	if res.Error != nil {
		return false, fmt.Errorf("claim tick: %w", res.Error)
	}
	return res.RowsAffected == 1, nil
}

// SetLastRun records the run a tick started.
func (s *DB) SetLastRun(ctx context.Context, id, runID string) error {
	return s.db.WithContext(ctx).Exec(`UPDATE schedules SET last_run_id = ? WHERE id = ?`, runID, id).Error
}
