package store

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/shared/engine"
)

// RenewLease extends the lease on a running step, and tells the holder
// whether the step's run was cancelled.
func (s *DB) RenewLease(ctx context.Context, l server.Lease, d time.Duration) (server.Renewal, error) {
	var out server.Renewal
	err := s.transaction(ctx, func(tx *gorm.DB) error {
		if err := s.lockStep(tx, l.StepID); err != nil {
			return err
		}
		row, err := s.ownedStep(tx, l)
		if err != nil {
			return err
		}
		expires := ceilMilli(s.now().Add(d))
		if err := tx.Model(&stepRow{}).Where("id = ? AND lease_id = ?", l.StepID, l.ID).
			Update("lease_expires", expires).Error; err != nil {
			return fmt.Errorf("renew lease of step %s: %w", l.StepID, err)
		}
		out = server.Renewal{Expires: time.UnixMilli(expires).UTC(), Cancel: row.CancelRequested}
		return nil
	})
	return out, err
}

// expireBatch bounds how many steps one ExpireSteps call ends.
const expireBatch = 100

// ExpireSteps ends running steps whose lease lapsed (their agent stopped
// renewing it: agent_lost) or whose deadline passed on the server's clock
// (timeout), each through the same path as an agent's report, so retry
// policies, cancellation and the DAG apply as usual. The holder's late
// report then conflicts. Safe to call from several server replicas: each
// step is ended once.
func (s *DB) ExpireSteps(ctx context.Context) (server.Expiry, error) {
	var out server.Expiry
	nowMs := s.now().UnixMilli()
	var rows []stepRow
	if err := s.db.WithContext(ctx).Where(isRunning+" AND (lease_expires < ? OR (deadline > 0 AND deadline < ?))",
		nowMs, nowMs).Limit(expireBatch).Find(&rows).Error; err != nil {
		return out, fmt.Errorf("find expired leases: %w", err)
	}
	for _, r := range rows {
		res := server.StepResult{StepID: r.ID, AgentID: r.AgentID, Attempt: r.Attempt, LeaseID: r.LeaseID}
		timedOut := r.Deadline > 0 && r.Deadline < nowMs
		if timedOut {
			res.Reason = engine.ReasonTimeout
			res.Error = fmt.Sprintf("step ran past its timeout of %s and its agent did not report it (server clock)",
				time.Duration(r.TimeoutMs)*time.Millisecond)
		} else {
			res.Reason = engine.ReasonAgentLost
			res.Error = fmt.Sprintf("agent %s stopped renewing the step's lease (it lapsed at %s)",
				r.AgentID, time.UnixMilli(r.LeaseExpires).UTC().Format(time.RFC3339))
		}
		var ready int
		err := s.transaction(ctx, func(tx *gorm.DB) error {
			// Look again inside the transaction, with the step locked: the
			// agent may have renewed the lease or reported since the query
			// above, and another replica may be expiring it too.
			if err := s.lockStepAndRun(tx, r.ID); err != nil {
				return err
			}
			var n int64
			if err := tx.Model(&stepRow{}).Where("id = ? AND lease_id = ? AND state = ? AND (lease_expires < ? OR (deadline > 0 AND deadline < ?))",
				r.ID, r.LeaseID, engine.StepRunning, nowMs, nowMs).Count(&n).Error; err != nil {
				return err
			}
			if n == 0 {
				return server.Errorf(server.ECONFLICT, "step %s is no longer expired", r.ID)
			}
			var err error
			ready, err = s.complete(tx, res)
			return err
		})
		switch {
		case server.ErrorCode(err) == server.ECONFLICT:
			continue // reported or renewed meanwhile, or another replica ended it
		case err != nil:
			return out, fmt.Errorf("expire step %s: %w", r.ID, err)
		case timedOut:
			out.TimedOut++
		default:
			out.Lost++
		}
		out.Ended = append(out.Ended, server.EndedStep{RunID: r.RunID, StepID: r.ID, Step: r.Name, AgentID: r.AgentID,
			Attempt: r.Attempt, Reason: res.Reason})
		out.Ready += ready
	}
	return out, nil
}
