package store

import (
	"context"
	"encoding/json"
	"fmt"

	"gorm.io/gorm"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/shared/engine"
)

// TrustRun gives an untrusted run's unstarted steps their secrets and
// labels back and marks the run trusted, in one transaction.
func (s *DB) TrustRun(ctx context.Context, id string, steps map[string]server.StepGrant) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		run, err := s.findRun(tx, id)
		if err != nil {
			return err
		}
		if !run.Untrusted || run.State.Terminal() {
			return server.Errorf(server.ECONFLICT, "run %s is %s and untrusted=%t: only an open untrusted run can be trusted", id, run.State, run.Untrusted)
		}
		for name, g := range steps {
			secrets, err := json.Marshal(nonNil(g.Secrets))
			if err != nil {
				return err
			}
			runsOn, err := json.Marshal(nonNil(g.RunsOn))
			if err != nil {
				return err
			}
			if err := tx.Model(&stepRow{}).Where("run_id = ? AND name = ? AND state IN ?", id, name,
				[]engine.StepState{engine.StepPending, engine.StepReady}).
				Updates(map[string]any{"secrets": string(secrets), "runs_on": string(runsOn)}).Error; err != nil {
				return fmt.Errorf("trust step %s: %w", name, err)
			}
		}
		return tx.Model(&runRow{}).Where("id = ?", id).Update("untrusted", false).Error
	})
}
