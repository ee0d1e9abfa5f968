package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/shared/engine"
	"github.com/baton-ci/baton/shared/runbook"
)

// ReserveStep moves the first reservable Ready step to Running for agentID
// with one conditional UPDATE, so two agents can never take the same step,
// records the attempt, and marks the run running. Reservable: past any retry
// delay, and every runs_on label is among the agent's. First: highest
// priority, then oldest run, then runbook order.
func (s *DB) ReserveStep(ctx context.Context, agentID string) (*server.Step, *server.Run, error) {
	var step *server.Step
	var run *server.Run
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		now := s.now()
		var rows []stepRow
		err := tx.Raw(`UPDATE steps SET state = ?, agent_id = ?, attempt = attempt + 1, started_at = ?, finished_at = NULL,
				exit_code = NULL, reason = '', error = '', outputs = '{}', not_before = 0
			WHERE id = (SELECT id FROM steps WHERE state = ? AND not_before <= ?
				AND NOT EXISTS (SELECT 1 FROM json_each(steps.runs_on) need
					WHERE need.value NOT IN (SELECT have.value FROM agents a, json_each(a.labels) have WHERE a.id = ?))
				ORDER BY priority DESC, run_id, idx LIMIT 1) AND state = ?
			RETURNING *`,
			engine.StepRunning, agentID, now, engine.StepReady, now.UnixMilli(), agentID, engine.StepReady).Scan(&rows).Error
		if err != nil {
			return fmt.Errorf("reserve step: %w", err)
		}
		if len(rows) == 0 {
			return nil
		}
		if step, err = rows[0].domain(); err != nil {
			return err
		}
		att := attemptRow{StepID: step.ID, Attempt: step.Attempt, RunID: step.RunID, AgentID: agentID,
			State: string(engine.StepRunning), StartedAt: now}
		if err := tx.Create(&att).Error; err != nil {
			return fmt.Errorf("record attempt %d of step %s: %w", step.Attempt, step.ID, err)
		}
		if err := tx.Model(&runRow{}).Where("id = ? AND state = ?", step.RunID, engine.RunPending).
			Updates(map[string]any{"state": engine.RunRunning, "started_at": now}).Error; err != nil {
			return fmt.Errorf("start run %s: %w", step.RunID, err)
		}
		var project []string
		if err := tx.Raw(`SELECT p.name FROM runs r JOIN projects p ON p.id = r.project_id WHERE r.id = ?`, step.RunID).
			Scan(&project).Error; err != nil || len(project) != 1 {
			return fmt.Errorf("project of run %s: %v", step.RunID, err)
		}
		run = &server.Run{ID: step.RunID, Project: project[0]}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return step, run, nil
}

// NextRetryAt returns when the earliest Ready step held back by a retry
// delay becomes reservable; the zero time when there is none.
func (s *DB) NextRetryAt(ctx context.Context) (time.Time, error) {
	var next []int64
	if err := s.db.WithContext(ctx).Raw(`SELECT MIN(not_before) FROM steps WHERE state = ? AND not_before > ?`,
		engine.StepReady, s.now().UnixMilli()).Scan(&next).Error; err != nil {
		return time.Time{}, fmt.Errorf("next retry: %w", err)
	}
	if len(next) == 0 || next[0] == 0 {
		return time.Time{}, nil
	}
	return time.UnixMilli(next[0]).UTC(), nil
}

// AppendLog stores a chunk of output for the agent's current attempt of a
// running step. A chunk already stored at the same offset is ignored, so an
// agent may safely retry an upload.
func (s *DB) AppendLog(ctx context.Context, stepID, agentID string, attempt int, offset int64, data []byte) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if _, err := s.ownedStep(tx, stepID, agentID, attempt); err != nil {
			return err
		}
		row := stepLogRow{StepID: stepID, Attempt: attempt, ByteOffset: offset, Data: data}
		return tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&row).Error
	})
}

// ownedStep returns the step if it is running under agentID at attempt;
// otherwise the caller's view is stale (ECONFLICT) or wrong (ENOTFOUND).
func (s *DB) ownedStep(tx *gorm.DB, stepID, agentID string, attempt int) (*stepRow, error) {
	var row stepRow
	if err := tx.Where("id = ?", stepID).Take(&row).Error; err != nil {
		return nil, notFound(err, "step %q not found", stepID)
	}
	if row.AgentID != agentID || row.Attempt != attempt {
		return nil, server.Errorf(server.ECONFLICT, "step %q attempt %d is not held by this agent", stepID, attempt)
	}
	if row.State != string(engine.StepRunning) {
		return &row, server.Errorf(server.ECONFLICT, "step %q is %s, not running", stepID, row.State)
	}
	return &row, nil
}

// CompleteStep records the result of an attempt, then, in the same
// transaction, either makes the step Ready again for a retry (its policy
// allows one for this failure) or advances the DAG and the run state.
// Repeating the report of an attempt already recorded with the same result
// is acknowledged without change; a different one is ECONFLICT.
func (s *DB) CompleteStep(ctx context.Context, res server.StepResult) (int, error) {
	ready := 0
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var att attemptRow
		if err := tx.Where("step_id = ? AND attempt = ?", res.StepID, res.Attempt).Take(&att).Error; err != nil {
			if !errors.Is(err, gorm.ErrRecordNotFound) {
				return fmt.Errorf("attempt %d of step %s: %w", res.Attempt, res.StepID, err)
			}
			_, err := s.ownedStep(tx, res.StepID, res.AgentID, res.Attempt)
			return err // ENOTFOUND for an unknown step, else ECONFLICT
		}
		if att.AgentID != res.AgentID {
			return server.Errorf(server.ECONFLICT, "step %q attempt %d is not held by this agent", res.StepID, res.Attempt)
		}
		if att.FinishedAt != nil {
			if att.Reported == reportKey(res) {
				return nil // a retried report
			}
			return server.Errorf(server.ECONFLICT, "step %q attempt %d already ended %s", res.StepID, res.Attempt, att.State)
		}
		row, err := s.ownedStep(tx, res.StepID, res.AgentID, res.Attempt)
		if err != nil {
			return err
		}
		step, err := row.domain()
		if err != nil {
			return err
		}
		state, reason, errMsg, err := s.judge(tx, step, res)
		if err != nil {
			return err
		}
		now := s.now()
		if err := tx.Model(&attemptRow{}).Where("step_id = ? AND attempt = ?", res.StepID, res.Attempt).Updates(map[string]any{
			"state": state, "exit_code": res.ExitCode, "reason": reason, "error": errMsg, "reported": reportKey(res), "finished_at": now,
		}).Error; err != nil {
			return fmt.Errorf("record attempt %d of step %s: %w", res.Attempt, res.StepID, err)
		}
		outputs := res.Outputs
		if outputs == nil {
			outputs = map[string]string{}
		}
		outputsJSON, err := json.Marshal(outputs)
		if err != nil {
			return err
		}
		updates := map[string]any{"state": state, "exit_code": res.ExitCode, "reason": reason, "error": errMsg,
			"outputs": string(outputsJSON), "finished_at": now}
		delay, retry := time.Duration(0), false
		if state == engine.StepFailed {
			delay, retry = step.Retry.Retries(res.Attempt, reason)
		}
		if retry {
			updates["state"] = engine.StepReady
			updates["finished_at"] = nil
			updates["not_before"] = ceilMilli(now.Add(delay))
		}
		if err := tx.Model(&stepRow{}).Where("id = ? AND state = ?", row.ID, engine.StepRunning).Updates(updates).Error; err != nil {
			return fmt.Errorf("complete step %s: %w", row.ID, err)
		}
		if retry {
			ready = 1
			return nil
		}
		ready, err = s.advance(tx, row.RunID, row.Name)
		return err
	})
	return ready, err
}

// judge decides how an attempt ended: the agent's report, then the step's
// assert (exit codes, and output matched against the stored log).
func (s *DB) judge(tx *gorm.DB, step *server.Step, res server.StepResult) (engine.StepState, engine.Reason, string, error) {
	switch {
	case res.Reason != "" && res.Reason != engine.ReasonExitCode:
		return engine.StepFailed, res.Reason, res.Error, nil
	case res.ExitCode == nil:
		return engine.StepFailed, engine.ReasonInfra, res.Error, nil
	case res.Error != "":
		return engine.StepFailed, engine.ReasonExitCode, res.Error, nil
	}
	var log []byte
	if step.Assert != nil && step.Assert.OutputMatches != "" {
		var err error
		if log, err = s.attemptLog(tx, step.ID, res.Attempt); err != nil {
			return "", "", "", err
		}
	}
	msg := step.Assert.Check(*res.ExitCode, log)
	switch {
	case msg == "":
		return engine.StepSucceeded, "", "", nil
	case step.Assert == nil:
		return engine.StepFailed, engine.ReasonExitCode, "", nil
	}
	return engine.StepFailed, engine.ReasonAssert, "assert: " + msg, nil
}

// ceilMilli is t in Unix milliseconds, rounded up so a delay is never cut short.
func ceilMilli(t time.Time) int64 {
	ms := t.UnixMilli()
	if t.Sub(time.UnixMilli(ms)) > 0 {
		ms++
	}
	return ms
}

// reportKey is what an agent reported, to recognise a retried report.
func reportKey(res server.StepResult) string {
	code := "none"
	if res.ExitCode != nil {
		code = fmt.Sprint(*res.ExitCode)
	}
	outputs, _ := json.Marshal(res.Outputs) // map keys are sorted
	return fmt.Sprintf("%s|%s|%s|%s", code, res.Reason, res.Error, outputs)
}

// advance applies the engine's transitions that follow from step `changed`
// reaching a terminal state, then updates the run state. Only the pending
// dependents of changed are loaded (and, as skips and failures propagate,
// of the steps that ended with them), with the states of their
// dependencies, so completing a step costs the same in a 10-step run and a
// 1,000-step one. It returns how many steps became Ready.
func (s *DB) advance(tx *gorm.DB, runID, changed string) (int, error) {
	return s.settle(tx, runID, func(frontier []string) ([]stepRow, error) {
		return pendingDependents(tx, runID, frontier)
	}, []string{changed})
}

// pendingDependents returns the pending steps that depend on any of names.
func pendingDependents(tx *gorm.DB, runID string, names []string) ([]stepRow, error) {
	var dependents []stepRow
	err := tx.Raw(`SELECT s.* FROM steps s JOIN step_deps d ON d.step_id = s.id
		WHERE d.run_id = ? AND d.depends_on IN ? AND s.state = ?`, runID, names, engine.StepPending).
		Scan(&dependents).Error
	return dependents, err
}

// settle repeatedly takes the pending steps that next returns for the
// frontier (the steps that just ended), lets the engine decide them, and
// persists the result: a step that becomes Ready gets its ${{ }} values
// rendered, and one whose condition or values cannot be evaluated fails.
// Steps that end this way (skipped, failed) form the next frontier. Then the
// run state is updated.
func (s *DB) settle(tx *gorm.DB, runID string, next func(frontier []string) ([]stepRow, error), frontier []string) (int, error) {
	ready := 0
	now := s.now()
	var facts *runFacts
	for len(frontier) > 0 {
		candidates, err := next(frontier)
		if err != nil {
			return 0, fmt.Errorf("dependents in run %s: %w", runID, err)
		}
		if len(candidates) == 0 {
			break
		}
		if facts == nil {
			if facts, err = s.loadRunFacts(tx, runID); err != nil {
				return 0, err
			}
		}
		g, err := s.subgraph(tx, runID, candidates, facts)
		if err != nil {
			return 0, err
		}
		frontier = frontier[:0]
		for _, c := range engine.AdvanceFrom(g.nodes, g.states, g.upstreamFailed) {
			updates := map[string]any{"state": c.To}
			switch {
			case c.To == engine.StepReady && g.steps[c.Step].awaitsApproval():
				// Held before it runs until a person decides (DecideApproval).
				c.To = engine.StepPending
				updates = map[string]any{"reason": engine.ReasonAwaitingApproval}
			case c.To == engine.StepReady:
				rendered, err := g.steps[c.Step].render(facts)
				if err != nil {
					c.To, c.Err = engine.StepFailed, err
					break
				}
				for k, v := range rendered {
					updates[k] = v
				}
			case c.To == engine.StepSkipped && c.UpstreamFailed:
				updates["reason"] = engine.ReasonUpstreamFailed
			case c.To == engine.StepSkipped:
				updates["reason"] = engine.ReasonCondition
			}
			if c.To == engine.StepFailed {
				updates = map[string]any{"state": c.To, "reason": engine.ReasonExpression, "error": c.Err.Error()}
			}
			if c.To.Terminal() {
				updates["finished_at"] = now
				frontier = append(frontier, c.Step)
			}
			if err := tx.Model(&stepRow{}).Where("id = ? AND state = ?", g.ids[c.Step], c.From).Updates(updates).Error; err != nil {
				return 0, fmt.Errorf("step %s -> %s: %w", c.Step, c.To, err)
			}
			if c.To == engine.StepReady {
				ready++
			}
		}
	}
	if err := s.updateRunState(tx, runID, now); err != nil {
		return 0, err
	}
	return ready, nil
}

// graph is the engine's view of some steps of a run.
type graph struct {
	nodes          []engine.Node
	states         map[string]engine.StepState
	upstreamFailed map[string]bool
	ids            map[string]string
	steps          map[string]*pendingStep
}

// subgraph returns the given steps as nodes, with their own and their
// dependencies' states, and their conditions bound to the run's facts.
func (s *DB) subgraph(tx *gorm.DB, runID string, steps []stepRow, facts *runFacts) (*graph, error) {
	g := &graph{
		states:         make(map[string]engine.StepState, len(steps)*2),
		upstreamFailed: map[string]bool{},
		ids:            make(map[string]string, len(steps)),
		steps:          make(map[string]*pendingStep, len(steps)),
	}
	var depNames []string
	for i := range steps {
		st, err := steps[i].domain()
		if err != nil {
			return nil, fmt.Errorf("step %s: %w", steps[i].ID, err)
		}
		ps := &pendingStep{tx: tx, db: s, step: st}
		node := engine.Node{Name: st.Name, DependsOn: st.DependsOn}
		if st.If != "" {
			cond, err := runbook.Condition(st.If, ps.scope(facts))
			if err != nil {
				return nil, fmt.Errorf("step %s: if: %w", st.Name, err) // validated at submit
			}
			node.If = cond
		}
		g.nodes = append(g.nodes, node)
		g.states[st.Name] = st.State
		g.ids[st.Name] = st.ID
		g.steps[st.Name] = ps
		depNames = append(depNames, st.DependsOn...)
	}
	if len(depNames) == 0 {
		return g, nil
	}
	var deps []struct {
		Name   string
		State  string
		Reason string
	}
	if err := tx.Raw(`SELECT name, state, reason FROM steps WHERE run_id = ? AND name IN ?`, runID, depNames).
		Scan(&deps).Error; err != nil {
		return nil, fmt.Errorf("dependency states in run %s: %w", runID, err)
	}
	for _, d := range deps {
		if _, ok := g.states[d.Name]; !ok {
			g.states[d.Name] = engine.StepState(d.State)
		}
		if d.State == string(engine.StepSkipped) {
			g.upstreamFailed[d.Name] = d.Reason != string(engine.ReasonCondition)
		}
	}
	return g, nil
}

// updateRunState derives the run state from counts of step states.
func (s *DB) updateRunState(tx *gorm.DB, runID string, now time.Time) error {
	var rows []struct {
		State string
		N     int
	}
	if err := tx.Raw(`SELECT state, COUNT(*) AS n FROM steps WHERE run_id = ? GROUP BY state`, runID).Scan(&rows).Error; err != nil {
		return fmt.Errorf("count steps of run %s: %w", runID, err)
	}
	counts := make(map[engine.StepState]int, len(rows))
	for _, r := range rows {
		counts[engine.StepState(r.State)] = r.N
	}
	runState := engine.RunStateFromCounts(counts)
	updates := map[string]any{"state": runState}
	if runState.Terminal() {
		updates["finished_at"] = now
	}
	if err := tx.Model(&runRow{}).Where("id = ?", runID).Updates(updates).Error; err != nil {
		return fmt.Errorf("run %s -> %s: %w", runID, runState, err)
	}
	return nil
}
