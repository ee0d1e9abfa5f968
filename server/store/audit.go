package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/baton-ci/baton/server"
)

var _ server.AuditStore = (*DB)(nil)

type auditRow struct {
	ID      string
	At      time.Time
	Actor   string
	Action  string
	RunID   string
	Step    string
	Comment string
}

func (auditRow) TableName() string { return "audit_events" }

func (s *DB) audit(tx *gorm.DB, e server.AuditEvent) error {
	if e.At.IsZero() {
		e.At = s.now()
	}
	row := auditRow{ID: uuid.Must(uuid.NewV7()).String(), At: e.At, Actor: e.Actor, Action: e.Action, RunID: e.RunID,
		Step: e.Step, Comment: e.Comment}
	if err := tx.Create(&row).Error; err != nil {
		return fmt.Errorf("audit %s: %w", e.Action, err)
	}
	return nil
}

// Audit records an event.
func (s *DB) Audit(ctx context.Context, e server.AuditEvent) error {
	return s.audit(s.db.WithContext(ctx), e)
}

// RunAudit lists a run's events, oldest first.
func (s *DB) RunAudit(ctx context.Context, runID string) ([]server.AuditEvent, error) {
	var rows []auditRow
	if err := s.db.WithContext(ctx).Where("run_id = ?", runID).Order("at, id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("audit of run %s: %w", runID, err)
	}
	return auditEvents(rows), nil
}

// AuditLog lists the latest events, newest first.
func (s *DB) AuditLog(ctx context.Context, limit int) ([]server.AuditEvent, error) {
	var rows []auditRow
	if err := s.db.WithContext(ctx).Order("at DESC, id DESC").Limit(limit).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	return auditEvents(rows), nil
}

func auditEvents(rows []auditRow) []server.AuditEvent {
	out := make([]server.AuditEvent, len(rows))
	for i, r := range rows {
		out[i] = server.AuditEvent{At: r.At.UTC(), Actor: r.Actor, Action: r.Action, RunID: r.RunID, Step: r.Step, Comment: r.Comment}
	}
	return out
}
