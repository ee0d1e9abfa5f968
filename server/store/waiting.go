package store

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/shared/engine"
)

// explainWaits sets Waiting on the run's pending and ready steps: why each
// has not started. The reasons, in the order they are checked: awaiting
// approval; waiting on dependencies; a retry delay; no enabled agent with
// the step's labels; the global pool limit; the project's limit; else its
// position in the project's queue, waiting for a free agent.
func (s *DB) explainWaits(tx *gorm.DB, run *server.Run) error {
	var rows []stepRow
	if err := tx.Where("run_id = ? AND state IN ?", run.ID, []engine.StepState{engine.StepPending, engine.StepReady}).
		Find(&rows).Error; err != nil {
		return fmt.Errorf("waiting steps of run %s: %w", run.ID, err)
	}
	if len(rows) == 0 {
		return nil
	}
	byID := make(map[string]*server.Step, len(run.Steps))
	states := make(map[string]engine.StepState, len(run.Steps))
	for _, st := range run.Steps {
		byID[st.ID] = st
		states[st.Name] = st.State
	}
	c := &waitFacts{poolRunning: -1, agents: map[string]int64{}}
	for i := range rows {
		r := &rows[i]
		st := byID[r.ID]
		if st == nil {
			continue
		}
		why, err := s.whyWaiting(tx, r, st, states, c)
		if err != nil {
			return err
		}
		st.Waiting = why
	}
	return nil
}

// waitFacts are what explaining one run's waits reads once: the pool's
// running count, the run's project and its running count, and the agents
// that could take each set of labels.
type waitFacts struct {
	poolRunning    int64 // -1: not read yet
	project        *projectRow
	projectRunning int64
	agents         map[string]int64 // by runs_on JSON
}

func (s *DB) whyWaiting(tx *gorm.DB, r *stepRow, st *server.Step, states map[string]engine.StepState, c *waitFacts) (string, error) {
	if r.State == string(engine.StepPending) {
		if r.Reason == string(engine.ReasonAwaitingApproval) {
			return "awaiting approval", nil
		}
		var open []string
		for _, d := range st.DependsOn {
			if !states[d].Terminal() {
				open = append(open, d)
			}
		}
		return "waiting on dependencies: " + strings.Join(open, ", "), nil
	}
	if now := s.now().UnixMilli(); r.NotBefore > now {
		return "retry delay: reservable at " + time.UnixMilli(r.NotBefore).UTC().Format(time.RFC3339), nil
	}
	var labels []string
	json.Unmarshal([]byte(r.RunsOn), &labels) // written by this package
	var agents int64
	if err := tx.Raw(`SELECT COUNT(*) FROM agents a WHERE a.state = ? AND `+s.d.agentCovers, server.AgentEnabled, r.RunsOn).
		Scan(&agents).Error; err != nil {
		return "", fmt.Errorf("agents for step %s: %w", r.Name, err)
	}
	if agents == 0 {
		if len(labels) == 0 {
			return "no enabled agent", nil
		}
		return "no enabled agent with labels " + strings.Join(labels, ", "), nil
	}
	if s.MaxRunning > 0 {
		if c.poolRunning < 0 {
			if err := tx.Model(&stepRow{}).Where(isRunning).Count(&c.poolRunning).Error; err != nil {
				return "", err
			}
		}
		if c.poolRunning >= int64(s.MaxRunning) {
			return fmt.Sprintf("pool limit: %d/%d steps running", c.poolRunning, s.MaxRunning), nil
		}
	}
	if c.project == nil { // every step of a run is of one project
		c.project = &projectRow{}
		if err := tx.Where("id = ?", r.ProjectID).Take(c.project).Error; err != nil {
			return "", fmt.Errorf("project of step %s: %w", r.Name, err)
		}
		if c.project.MaxRunning > 0 {
			if err := tx.Model(&stepRow{}).Where("project_id = ? AND "+isRunning, c.project.ID).
				Count(&c.projectRunning).Error; err != nil {
				return "", err
			}
		}
	}
	p := c.project
	if p.MaxRunning > 0 && c.projectRunning >= int64(p.MaxRunning) {
		return fmt.Sprintf("project limit: %d/%d steps running", c.projectRunning, p.MaxRunning), nil
	}
	var ahead int64
	if err := tx.Model(&stepRow{}).Where(`project_id = ? AND `+isReady+` AND (priority > ? OR (priority = ? AND (run_id < ? OR (run_id = ? AND idx < ?))))`,
		p.ID, r.Priority, r.Priority, r.RunID, r.RunID, r.Idx).Count(&ahead).Error; err != nil {
		return "", err
	}
	return fmt.Sprintf("waiting for a free agent: position %d in the project's queue (fair share across projects)", ahead+1), nil
}
