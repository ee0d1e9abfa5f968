package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/shared/engine"
)

// CreateRun stores the run and its steps in one transaction, creating the
// project on first use, and makes the steps without dependencies Ready.
func (s *DB) CreateRun(ctx context.Context, run *server.Run) error {
	now := s.now()
	if run.ID == "" {
		run.ID = uuid.Must(uuid.NewV7()).String()
	}
	run.CreatedAt = now
	run.State = engine.RunPending
	for i, st := range run.Steps {
		st.ID = uuid.Must(uuid.NewV7()).String()
		st.RunID = run.ID
		st.Index = i
		st.State = engine.StepPending
	}
	err := s.transaction(ctx, func(tx *gorm.DB) error {
		projectID, err := s.ensureProject(tx, run.Project)
		if err != nil {
			return err
		}
		params := run.Params
		if params == nil {
			params = map[string]any{}
		}
		paramsJSON, err := json.Marshal(params)
		if err != nil {
			return fmt.Errorf("params: %w", err)
		}
		source, err := sourceText(run.Source)
		if err != nil {
			return err
		}
		ciSource, err := sourceText(run.CISource)
		if err != nil {
			return err
		}
		if run.Trigger == "" {
			run.Trigger = "api"
		}
		files := run.Files
		if files == nil {
			files = map[string]string{}
		}
		filesJSON, err := json.Marshal(files)
		if err != nil {
			return err
		}
		if run.Error != "" {
			run.State = engine.RunFailed // nothing to run: it failed before it started
		}
		row := runRow{ID: run.ID, ProjectID: projectID, Name: run.Name, Params: string(paramsJSON), State: string(run.State),
			Runbook: run.Runbook, CreatedAt: now, Source: source, CiSource: ciSource, Trigger: run.Trigger, RetryOf: run.RetryOf,
			Files: string(filesJSON), Error: run.Error, CausedBy: run.CausedBy, Depth: run.Depth,
			Untrusted: run.Untrusted}
		if run.Error != "" {
			row.FinishedAt = &now
		}
		if run.IdempotencyKey != "" {
			key := run.IdempotencyKey
			row.IdempotencyKey = &key
			var existing []string
			if err := tx.Raw(`SELECT id FROM runs WHERE project_id = ? AND idempotency_key = ?`, projectID, key).
				Scan(&existing).Error; err != nil {
				return fmt.Errorf("idempotency key: %w", err)
			}
			if len(existing) > 0 {
				run.ID = existing[0]
				return server.ErrRunExists
			}
		}
		// A savepoint lets the lookup below run after a failed insert
		// (PostgreSQL aborts the whole transaction otherwise).
		if err := tx.SavePoint("run_insert").Error; err != nil {
			return fmt.Errorf("insert run: %w", err)
		}
		if err := tx.Create(&row).Error; err != nil {
			if run.IdempotencyKey != "" {
				tx.RollbackTo("run_insert")
				var existing []string
				if tx.Raw(`SELECT id FROM runs WHERE project_id = ? AND idempotency_key = ?`, projectID, run.IdempotencyKey).
					Scan(&existing).Error == nil && len(existing) > 0 {
					run.ID = existing[0] // another server replica won the race
					return server.ErrRunExists
				}
			}
			return fmt.Errorf("insert run: %w", err)
		}
		rows := make([]*stepRow, 0, len(run.Steps))
		for _, st := range run.Steps {
			r, err := stepRowOf(st)
			if err != nil {
				return err
			}
			r.ProjectID = projectID
			rows = append(rows, r)
		}
		if len(rows) == 0 {
			return nil // a run that failed before it started (Error)
		}
		if err := tx.CreateInBatches(rows, 100).Error; err != nil {
			return fmt.Errorf("insert steps: %w", err)
		}
		var deps []stepDepRow
		for _, st := range run.Steps {
			for _, d := range st.DependsOn {
				deps = append(deps, stepDepRow{RunID: run.ID, DependsOn: d, StepID: st.ID})
			}
		}
		if len(deps) > 0 {
			if err := tx.CreateInBatches(deps, 300).Error; err != nil {
				return fmt.Errorf("insert step dependencies: %w", err)
			}
		}
		// Decide the entry steps (conditions, ${{ }} values), then whatever
		// follows from those that end at once.
		entry := true
		if _, err := s.settle(tx, run.ID, func(frontier []string) ([]stepRow, error) {
			if !entry {
				return s.pendingDependents(tx, run.ID, frontier)
			}
			entry = false
			var rows []stepRow
			err := tx.Raw(`SELECT * FROM steps WHERE run_id = ? AND state = ? AND id NOT IN (SELECT step_id FROM step_deps WHERE run_id = ?)`,
				run.ID, engine.StepPending, run.ID).Scan(&rows).Error
			return rows, err
		}, []string{""}); err != nil {
			return err
		}
		return nil
	})
	if err != nil || len(run.Steps) == 0 {
		return err // nothing to read back for a run that failed before it started
	}
	// The run as stored, read after the commit from a reader: reading 50
	// steps back took the one SQLite writer as long as inserting them.
	return s.refresh(s.r.WithContext(ctx), run)
}

// DecideApproval lets a step awaiting approval run, or fails it with reason
// rejected and advances the DAG, in one transaction.
func (s *DB) DecideApproval(ctx context.Context, runID, stepName string, approve bool, by, comment string) (int, error) {
	ready := 0
	err := s.transaction(ctx, func(tx *gorm.DB) error {
		if err := s.lockRun(tx, runID); err != nil {
			return err
		}
		action := "approve"
		if !approve {
			action = "reject"
		}
		var row stepRow
		if err := tx.Where("run_id = ? AND name = ?", runID, stepName).Take(&row).Error; err != nil {
			return notFound(err, "step %q of run %q not found", stepName, runID)
		}
		if row.State != string(engine.StepPending) || row.Reason != string(engine.ReasonAwaitingApproval) {
			return server.Errorf(server.ECONFLICT, "step %q is %s, not awaiting approval", stepName, row.State)
		}
		if err := s.audit(tx, server.AuditEvent{Actor: by, Action: action, RunID: runID, Step: stepName, Comment: comment}); err != nil {
			return err
		}
		var err error
		if !approve {
			if err := tx.Model(&stepRow{}).Where("id = ?", row.ID).Updates(map[string]any{
				"state": engine.StepFailed, "reason": engine.ReasonRejected, "error": rejection(by, comment), "finished_at": s.now(),
			}).Error; err != nil {
				return fmt.Errorf("reject step %s: %w", row.ID, err)
			}
			if err := s.notify(tx, runID, stepName, string(engine.StepFailed), string(engine.ReasonRejected)); err != nil {
				return err
			}
			readied, err := s.advance(tx, runID, stepName, knownState{engine.StepFailed, string(engine.ReasonRejected)}, false, false)
			ready = len(readied)
			return err
		}
		if err := tx.Model(&stepRow{}).Where("id = ?", row.ID).Update("reason", engine.ReasonApproved).Error; err != nil {
			return fmt.Errorf("approve step %s: %w", row.ID, err)
		}
		row.Reason = string(engine.ReasonApproved)
		first := true
		ready, err = s.settle(tx, runID, func(frontier []string) ([]stepRow, error) {
			if first {
				first = false
				return []stepRow{row}, nil
			}
			return s.pendingDependents(tx, runID, frontier)
		}, []string{stepName})
		return err
	})
	return ready, err
}

// ResumeRun starts an ended run again from where it failed: failed,
// cancelled and skipped steps go back to pending and are decided again, so
// the ones whose dependencies succeeded become Ready; succeeded steps keep
// their results and outputs. Attempt numbers continue.
func (s *DB) ResumeRun(ctx context.Context, id string) (*server.Run, error) {
	var run *server.Run
	err := s.transaction(ctx, func(tx *gorm.DB) error {
		if err := s.lockRun(tx, id); err != nil {
			return err
		}
		var err error
		if run, err = s.findRun(tx, id); err != nil {
			return err
		}
		if run.State != engine.RunFailed && run.State != engine.RunCancelled {
			return server.Errorf(server.ECONFLICT, "run %s is %s; only a failed or cancelled run can be resumed", id, run.State)
		}
		if err := tx.Model(&stepRow{}).Where("run_id = ? AND state IN ?", id,
			[]engine.StepState{engine.StepFailed, engine.StepCancelled, engine.StepSkipped}).
			Updates(map[string]any{"state": engine.StepPending, "reason": "", "error": "", "finished_at": nil, "agent_id": "",
				"cancel_requested": false, "lease_id": ""}).Error; err != nil {
			return fmt.Errorf("reset steps of run %s: %w", id, err)
		}
		if err := tx.Model(&runRow{}).Where("id = ?", id).Updates(map[string]any{"finished_at": nil, "cancel_requested": false}).Error; err != nil {
			return fmt.Errorf("reopen run %s: %w", id, err)
		}
		first := true
		if _, err := s.settle(tx, id, func(frontier []string) ([]stepRow, error) {
			if !first {
				return s.pendingDependents(tx, id, frontier)
			}
			first = false
			var rows []stepRow
			err := tx.Where("run_id = ? AND state = ?", id, engine.StepPending).Find(&rows).Error
			return rows, err
		}, []string{""}); err != nil {
			return err
		}
		return s.refresh(tx, run)
	})
	if err != nil {
		return nil, err
	}
	return run, nil
}

// refresh reloads the run's state and steps after settle changed them.
func (s *DB) refresh(tx *gorm.DB, run *server.Run) error {
	fresh, err := s.findRun(tx, run.ID)
	if err != nil {
		return err
	}
	steps, err := s.runSteps(tx, run.ID)
	if err != nil {
		return err
	}
	run.State, run.FinishedAt, run.Steps = fresh.State, fresh.FinishedAt, steps
	return nil
}

func (s *DB) ensureProject(tx *gorm.DB, name string) (string, error) {
	var p projectRow
	err := tx.Where("name = ?", name).Take(&p).Error
	if err == nil {
		return p.ID, nil
	}
	if !errors.Is(err, gorm.ErrRecordNotFound) {
		return "", fmt.Errorf("find project: %w", err)
	}
	// Another replica may create it at the same moment: the insert then
	// waits for it and does nothing, and the read below finds its row.
	p = projectRow{ID: uuid.Must(uuid.NewV7()).String(), Name: name, CreatedAt: s.now(), Weight: 1}
	if err := tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "name"}}, DoNothing: true}).Create(&p).Error; err != nil {
		return "", fmt.Errorf("create project %q: %w", name, err)
	}
	var got projectRow // not into p: gorm would add p's id to the condition
	if err := tx.Where("name = ?", name).Take(&got).Error; err != nil {
		return "", fmt.Errorf("find project %q: %w", name, err)
	}
	return got.ID, nil
}

// FindRun returns a run with its steps in runbook order.
func (s *DB) FindRun(ctx context.Context, id string) (*server.Run, error) {
	db := s.r.WithContext(ctx)
	run, err := s.findRun(db, id)
	if err != nil {
		return nil, err
	}
	run.Steps, err = s.runSteps(db, id)
	if err != nil {
		return nil, err
	}
	var atts []attemptRow
	if err := db.Where("run_id = ?", id).Order("step_id, attempt").Find(&atts).Error; err != nil {
		return nil, fmt.Errorf("attempts of run %s: %w", id, err)
	}
	byStep := make(map[string]*server.Step, len(run.Steps))
	for _, st := range run.Steps {
		byStep[st.ID] = st
	}
	for i := range atts {
		if st := byStep[atts[i].StepID]; st != nil {
			st.Attempts = append(st.Attempts, atts[i].domain())
		}
	}
	if err := s.explainWaits(db, run); err != nil {
		return nil, err
	}
	return run, nil
}

func (s *DB) findRun(tx *gorm.DB, id string) (*server.Run, error) {
	var row runRow
	if err := tx.Where("id = ?", id).Take(&row).Error; err != nil {
		return nil, notFound(err, "run %q not found", id)
	}
	var p projectRow
	if err := tx.Where("id = ?", row.ProjectID).Take(&p).Error; err != nil {
		return nil, fmt.Errorf("project of run %s: %w", id, err)
	}
	return row.domain(p.Name)
}

func (s *DB) runSteps(tx *gorm.DB, runID string) ([]*server.Step, error) {
	var rows []stepRow
	if err := tx.Where("run_id = ?", runID).Order("idx").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("steps of run %s: %w", runID, err)
	}
	steps := make([]*server.Step, len(rows))
	for i := range rows {
		st, err := rows[i].domain()
		if err != nil {
			return nil, fmt.Errorf("step %s: %w", rows[i].ID, err)
		}
		steps[i] = st
	}
	return steps, nil
}

// StepLog returns one attempt's output of a step (0: the latest), chunks in order.
func (s *DB) StepLog(ctx context.Context, runID, stepName string, attempt int) ([]byte, error) {
	log, _, err := s.StepLogTimes(ctx, runID, stepName, attempt)
	return log, err
}

// StepLogTimes returns one attempt's output with its chunks' line times.
func (s *DB) StepLogTimes(ctx context.Context, runID, stepName string, attempt int) ([]byte, []server.LogChunkTimes, error) {
	db := s.r.WithContext(ctx)
	var st stepRow
	if err := db.Where("run_id = ? AND name = ?", runID, stepName).Take(&st).Error; err != nil {
		return nil, nil, notFound(err, "step %q of run %q not found", stepName, runID)
	}
	if attempt == 0 {
		attempt = st.Attempt
	}
	if attempt < 0 || attempt > st.Attempt {
		return nil, nil, server.Errorf(server.ENOTFOUND, "step %q of run %q has no attempt %d", stepName, runID, attempt)
	}
	return s.attemptLogTimes(db, st.ID, attempt)
}

// attemptLog returns one attempt's output, chunks in offset order.
func (s *DB) attemptLog(tx *gorm.DB, stepID string, attempt int) ([]byte, error) {
	log, _, err := s.attemptLogTimes(tx, stepID, attempt)
	return log, err
}

// attemptLogTimes returns one attempt's output, chunks in offset order,
// with the line times of the chunks that have them.
func (s *DB) attemptLogTimes(tx *gorm.DB, stepID string, attempt int) ([]byte, []server.LogChunkTimes, error) {
	var chunks []stepLogRow
	if err := tx.Where("step_id = ? AND attempt = ?", stepID, attempt).Order("byte_offset").Find(&chunks).Error; err != nil {
		return nil, nil, fmt.Errorf("log of step %s: %w", stepID, err)
	}
	var buf bytes.Buffer
	var times []server.LogChunkTimes
	for _, c := range chunks {
		if c.Times != "" && c.ByteOffset >= int64(buf.Len()) {
			times = append(times, server.LogChunkTimes{Offset: c.ByteOffset, Times: c.Times})
		}
		// Chunks are stored at the offset the agent sent; skip any overlap.
		if c.ByteOffset < int64(buf.Len()) {
			skip := int64(buf.Len()) - c.ByteOffset
			if skip >= int64(len(c.Data)) {
				continue
			}
			c.Data = c.Data[skip:]
		}
		buf.Write(c.Data)
	}
	return buf.Bytes(), times, nil
}

// rejection is a rejected step's error: who, and why if they said.
func rejection(by, comment string) string {
	if comment == "" {
		return "approval rejected by " + by
	}
	return "approval rejected by " + by + ": " + comment
}
