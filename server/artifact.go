package server

import (
	"context"
	"time"
)

// Artifact is a file a step stored for its run (cacher put). Its content
// lives outside the database; this is what is known about it.
type Artifact struct {
	RunID  string
	Key    string // see artifact.ValidateKey
	Size   int64
	SHA256 string // lowercase hex of the content
	// StepID is the step that stored it last.
	StepID    string
	CreatedAt time.Time
}

// ArtifactStore keeps what is known about artifacts. Artifacts belong to a
// run: a step reaches only its own run's, through the lease it holds.
type ArtifactStore interface {
	// LeasedRun returns the run of the step held under l: ENOTFOUND for an
	// unknown step, ECONFLICT when l is not the step's current lease.
	LeasedRun(ctx context.Context, l Lease) (string, error)
	// PutArtifact records an artifact, replacing one with the same run and key.
	PutArtifact(ctx context.Context, a *Artifact) error
	// FindArtifact returns a run's artifact, or ENOTFOUND.
	FindArtifact(ctx context.Context, runID, key string) (*Artifact, error)
	// DeleteArtifact forgets a run's artifact, or returns ENOTFOUND.
	DeleteArtifact(ctx context.Context, runID, key string) error
	// ExpiredArtifactRuns returns up to limit runs that hold artifacts and
	// finished before t.
	ExpiredArtifactRuns(ctx context.Context, t time.Time, limit int) ([]string, error)
	// DeleteRunArtifacts forgets every artifact of a run.
	DeleteRunArtifacts(ctx context.Context, runID string) error
}
