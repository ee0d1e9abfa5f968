package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/baton-ci/baton/server"
)

var _ server.HookStore = (*DB)(nil)

type hookDeliveryRow struct {
	ProjectID  string
	Provider   string
	DeliveryID string
	Event      string
	State      string
	RunID      string
	Error      string
	ReceivedAt time.Time
}

func (hookDeliveryRow) TableName() string { return "hook_deliveries" }

func (r *hookDeliveryRow) domain(project string) *server.HookDelivery {
	return &server.HookDelivery{Project: project, Provider: r.Provider, DeliveryID: r.DeliveryID, Event: r.Event,
		State: r.State, RunID: r.RunID, Error: r.Error, ReceivedAt: r.ReceivedAt.UTC()}
}

// RecordDelivery inserts a delivery unless its (project, provider,
// delivery id) is known, in which case it returns the known one.
func (s *DB) RecordDelivery(ctx context.Context, d *server.HookDelivery) (*server.HookDelivery, bool, error) {
	var existing *server.HookDelivery
	created := false
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		projectID, err := s.ensureProject(tx, d.Project)
		if err != nil {
			return err
		}
		d.ReceivedAt = s.now()
		row := hookDeliveryRow{ProjectID: projectID, Provider: d.Provider, DeliveryID: d.DeliveryID, Event: d.Event,
			State: d.State, RunID: d.RunID, Error: d.Error, ReceivedAt: d.ReceivedAt}
		res := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&row)
		if res.Error != nil {
			return fmt.Errorf("record delivery: %w", res.Error)
		}
		if res.RowsAffected == 1 {
			created = true
			return nil
		}
		var found hookDeliveryRow
		if err := tx.Where("project_id = ? AND provider = ? AND delivery_id = ?", projectID, d.Provider, d.DeliveryID).
			Take(&found).Error; err != nil {
			return fmt.Errorf("find delivery: %w", err)
		}
		existing = found.domain(d.Project)
		return nil
	})
	return existing, created, err
}

// ClaimDelivery takes the oldest queued delivery (or one whose claim went
// stale) with one conditional update, so two server replicas never take
// the same one.
func (s *DB) ClaimDelivery(ctx context.Context, stale time.Duration) (*server.HookDelivery, error) {
	var out *server.HookDelivery
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		now := s.now()
		var rows []hookDeliveryRow
		if err := tx.Raw(`UPDATE hook_deliveries SET state = ?, received_at = ?
			WHERE (project_id, provider, delivery_id) = (SELECT project_id, provider, delivery_id FROM hook_deliveries
				WHERE state = ? OR (state = ? AND received_at < ?) ORDER BY received_at LIMIT 1)
				AND (state = ? OR (state = ? AND received_at < ?))
			RETURNING *`, server.HookProcessing, now, server.HookQueued, server.HookProcessing, now.Add(-stale),
			server.HookQueued, server.HookProcessing, now.Add(-stale)).
			Scan(&rows).Error; err != nil {
			return fmt.Errorf("claim delivery: %w", err)
		}
		if len(rows) == 0 {
			return nil
		}
		var p projectRow
		if err := tx.Where("id = ?", rows[0].ProjectID).Take(&p).Error; err != nil {
			return fmt.Errorf("project of delivery: %w", err)
		}
		out = rows[0].domain(p.Name)
		return nil
	})
	return out, err
}

// FinishDelivery records a delivery's outcome.
func (s *DB) FinishDelivery(ctx context.Context, d *server.HookDelivery) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var p projectRow
		if err := tx.Where("name = ?", d.Project).Take(&p).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return server.Errorf(server.ENOTFOUND, "project %q not found", d.Project)
			}
			return err
		}
		return tx.Model(&hookDeliveryRow{}).Where("project_id = ? AND provider = ? AND delivery_id = ?", p.ID, d.Provider, d.DeliveryID).
			Updates(map[string]any{"state": d.State, "run_id": d.RunID, "error": d.Error}).Error
	})
}
