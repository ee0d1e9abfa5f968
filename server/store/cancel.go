package store

import (
	"context"
	"fmt"

	"gorm.io/gorm"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/shared/engine"
	"github.com/baton-ci/baton/shared/runbook"
)

// CancelRun cancels a run in one transaction. Steps that have not started
// become Cancelled, except those whose condition asks about the run's
// status (cleanup steps: always(); cancelled(), failure()): they are
// decided as usual once their dependencies end, seeing cancelled() true.
// Running steps are marked; their holders learn it when they renew their
// lease (the control channel's cancel hint makes them renew at once), stop
// the step, and its report records it Cancelled. It returns the agents to
// hint.
func (s *DB) CancelRun(ctx context.Context, id string) ([]string, error) {
	var agents []string
	err := s.transaction(ctx, func(tx *gorm.DB) error {
		agents = nil
		if err := s.lockRun(tx, id); err != nil {
			return err
		}
		run, err := s.findRun(tx, id)
		if err != nil {
			return err
		}
		if run.State.Terminal() {
			return server.Errorf(server.ECONFLICT, "run %s has already %s", id, run.State)
		}
		if err := tx.Model(&runRow{}).Where("id = ?", id).Update("cancel_requested", true).Error; err != nil {
			return fmt.Errorf("cancel run %s: %w", id, err)
		}
		var rows []stepRow
		if err := tx.Where("run_id = ? AND state IN ?", id,
			[]engine.StepState{engine.StepPending, engine.StepReady, engine.StepRunning}).Find(&rows).Error; err != nil {
			return fmt.Errorf("open steps of run %s: %w", id, err)
		}
		now := s.now()
		var cancelled []string
		seen := map[string]bool{}
		for _, r := range rows {
			switch {
			case r.State == string(engine.StepRunning):
				if err := tx.Model(&stepRow{}).Where("id = ? AND state = ?", r.ID, engine.StepRunning).
					Update("cancel_requested", true).Error; err != nil {
					return fmt.Errorf("cancel step %s: %w", r.Name, err)
				}
				if !seen[r.AgentID] {
					seen[r.AgentID] = true
					agents = append(agents, r.AgentID)
				}
			case asksStatus(r.IfCond):
				// Decided when its dependencies end, knowing the run was cancelled.
			default:
				if err := tx.Model(&stepRow{}).Where("id = ? AND state = ?", r.ID, r.State).Updates(map[string]any{
					"state": engine.StepCancelled, "reason": engine.ReasonCancelled, "error": "the run was cancelled",
					"finished_at": now, "not_before": 0,
				}).Error; err != nil {
					return fmt.Errorf("cancel step %s: %w", r.Name, err)
				}
				cancelled = append(cancelled, r.Name)
				if err := s.notify(tx, id, r.Name, string(engine.StepCancelled), string(engine.ReasonCancelled)); err != nil {
					return err
				}
			}
		}
		_, err = s.settle(tx, id, func(frontier []string) ([]stepRow, error) {
			return s.pendingDependents(tx, id, frontier)
		}, cancelled)
		return err
	})
	return agents, err
}

// asksStatus reports whether a stored condition calls a status function,
// so the step may still run after a failure or cancel.
func asksStatus(cond string) bool {
	if cond == "" {
		return false
	}
	c, err := runbook.Condition(cond, nil)
	return err == nil && c.AsksStatus
}
