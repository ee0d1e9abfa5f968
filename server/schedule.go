package server

import (
	"context"
	"time"
)

// Schedule starts a project's runbook on a cron schedule.
type Schedule struct {
	ID      string
	Project string
	Name    string
	// Cron is a standard 5-field expression or a descriptor (@daily,
	// @every 1h), read in Timezone.
	Cron     string
	Timezone string
	// Branch names the branch of the project's repository whose
	// runbook.yml runs; Runbook, when set instead, is the runbook text.
	Branch  string
	Runbook string
	Params  map[string]any
	// NextAt is the next tick; LastRunID the run the last tick started.
	NextAt    time.Time
	LastRunID string
	CreatedAt time.Time
}

// ScheduleStore keeps schedules and hands out their ticks.
type ScheduleStore interface {
	// PutSchedule creates or replaces a project's schedule by name.
	PutSchedule(ctx context.Context, s *Schedule) error
	// ListSchedules returns a project's schedules by name.
	ListSchedules(ctx context.Context, project string) ([]*Schedule, error)
	// DeleteSchedule removes one, or ENOTFOUND.
	DeleteSchedule(ctx context.Context, project, name string) error
	// DueSchedules returns schedules whose next tick is at or before now.
	DueSchedules(ctx context.Context, now time.Time) ([]*Schedule, error)
	// ClaimTick moves a schedule's next tick from due to next, if no one
	// else did; it reports whether this caller owns the tick.
	ClaimTick(ctx context.Context, id string, due, next time.Time) (bool, error)
	// SetLastRun records the run a tick started.
	SetLastRun(ctx context.Context, id, runID string) error
}
