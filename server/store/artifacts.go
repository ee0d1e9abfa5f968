package store

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/baton-ci/baton/server"
)

var _ server.ArtifactStore = (*DB)(nil)

type artifactRow struct {
	RunID     string `gorm:"primaryKey"`
	Key       string `gorm:"primaryKey"`
	Size      int64
	Sha256    string
	CreatedAt time.Time
	StepID    string
}

func (artifactRow) TableName() string { return "artifacts" }

func (r *artifactRow) domain() *server.Artifact {
	return &server.Artifact{RunID: r.RunID, Key: r.Key, Size: r.Size, SHA256: r.Sha256, StepID: r.StepID, CreatedAt: r.CreatedAt}
}

// LeasedRun returns the run of the step held under l, checked exactly like
// a log upload: the step must be running under this agent, attempt and lease.
func (s *DB) LeasedRun(ctx context.Context, l server.Lease) (string, error) {
	var runID string
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		row, err := s.ownedStep(tx, l)
		if err != nil {
			return err
		}
		runID = row.RunID
		return nil
	})
	return runID, err
}

// PutArtifact records an artifact, replacing one with the same run and key.
func (s *DB) PutArtifact(ctx context.Context, a *server.Artifact) error {
	row := artifactRow{RunID: a.RunID, Key: a.Key, Size: a.Size, Sha256: a.SHA256, CreatedAt: a.CreatedAt, StepID: a.StepID}
	if row.CreatedAt.IsZero() {
		row.CreatedAt = s.now()
	}
	err := s.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "run_id"}, {Name: "key"}},
		DoUpdates: clause.AssignmentColumns([]string{"size", "sha256", "created_at", "step_id"}),
	}).Create(&row).Error
	if err != nil {
		return fmt.Errorf("record artifact %q of run %s: %w", a.Key, a.RunID, err)
	}
	a.CreatedAt = row.CreatedAt
	return nil
}

// FindArtifact returns a run's artifact, or ENOTFOUND.
func (s *DB) FindArtifact(ctx context.Context, runID, key string) (*server.Artifact, error) {
	var row artifactRow
	if err := s.db.WithContext(ctx).Where("run_id = ? AND key = ?", runID, key).Take(&row).Error; err != nil {
		return nil, notFound(err, "no artifact %q in this run", key)
	}
	return row.domain(), nil
}

// DeleteArtifact forgets a run's artifact, or returns ENOTFOUND.
func (s *DB) DeleteArtifact(ctx context.Context, runID, key string) error {
	res := s.db.WithContext(ctx).Where("run_id = ? AND key = ?", runID, key).Delete(&artifactRow{})
	if res.Error != nil {
		return fmt.Errorf("delete artifact %q of run %s: %w", key, runID, res.Error)
	}
	if res.RowsAffected == 0 {
		return server.Errorf(server.ENOTFOUND, "no artifact %q in this run", key)
	}
	return nil
}

// ExpiredArtifactRuns returns up to limit runs that hold artifacts and
// finished before t, oldest first.
func (s *DB) ExpiredArtifactRuns(ctx context.Context, t time.Time, limit int) ([]string, error) {
	var ids []string
	if err := s.db.WithContext(ctx).Raw(`SELECT r.id FROM runs r
		WHERE r.id IN (SELECT DISTINCT run_id FROM artifacts) AND `+s.d.finishedBefore+`
		ORDER BY r.finished_at LIMIT ?`, t.UTC(), limit).Scan(&ids).Error; err != nil {
		return nil, fmt.Errorf("runs with expired artifacts: %w", err)
	}
	return ids, nil
}

// DeleteRunArtifacts forgets every artifact of a run.
func (s *DB) DeleteRunArtifacts(ctx context.Context, runID string) error {
	if err := s.db.WithContext(ctx).Where("run_id = ?", runID).Delete(&artifactRow{}).Error; err != nil {
		return fmt.Errorf("delete artifacts of run %s: %w", runID, err)
	}
	return nil
}
