package server

import (
	"context"
	"time"
)

// AuditEvent records who did what to a run.
type AuditEvent struct {
	At      time.Time
	Actor   string
	Action  string // approve, reject, cancel, retry, resume
	RunID   string
	Step    string
	Comment string
}

// AuditStore keeps the audit trail.
type AuditStore interface {
	// Audit records an event.
	Audit(ctx context.Context, e AuditEvent) error
	// RunAudit lists a run's events, oldest first.
	RunAudit(ctx context.Context, runID string) ([]AuditEvent, error)
	// AuditLog lists the latest events, newest first.
	AuditLog(ctx context.Context, limit int) ([]AuditEvent, error)
}
