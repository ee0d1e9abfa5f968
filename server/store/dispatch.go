package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/shared/engine"
	"github.com/baton-ci/baton/shared/runbook"
)

// pickProject chooses whose step runs next, among projects with a step
// the agent can take now and below their concurrency limit: the highest
// step priority first, then the smallest share in use (running steps /
// weight), then the project served longest ago. So one project with 10,000
// queued steps cannot starve another: each reservation goes to the
// project using the least of the fleet. It lists a few candidates, best
// first: with several replicas, the best one's steps may all be being
// reserved by others at this moment. Each candidate comes with its limit,
// and with its served mark and the latest one of all projects. Running
// steps are counted only where they matter: for a limit, or to order
// several projects (counting is the pick's largest cost, and most picks
// find one project with work).
func (d *dialect) pickProject() string {
	return `WITH cand AS (
	SELECT p.id, p.name, p.max_running, p.weight, p.served, MAX(p.served) OVER () AS latest,
		(SELECT MAX(s.priority) FROM steps s WHERE s.project_id = p.id AND ` + stateIs("s.state", engine.StepReady) + ` AND s.not_before <= ? AND ` + d.agentHasLabels + `) AS top
	FROM projects p),
waiting AS (SELECT cand.*, COUNT(*) OVER () AS n FROM cand WHERE top IS NOT NULL),
counted AS (SELECT waiting.*, CASE WHEN n > 1 OR max_running > 0
		THEN (SELECT COUNT(*) FROM steps r WHERE r.project_id = waiting.id AND ` + stateIs("r.state", engine.StepRunning) + `) ELSE 0 END AS running
	FROM waiting)
SELECT id, name, max_running, served, latest FROM counted WHERE max_running = 0 OR running < max_running
ORDER BY top DESC, ` + d.share + `, served, id LIMIT 4`
}

// reserveInProject is the one conditional UPDATE that takes a project's best
// step for an agent (highest priority, then oldest run, then runbook order),
// unless the agent is known and not enabled: the agent's state as the
// caller last read it may be a moment old (RecentAgent).
// On PostgreSQL its subquery skips steps other transactions are reserving
// (FOR NO KEY UPDATE SKIP LOCKED), and the outer state check holds under READ
// COMMITTED, so two replicas can never take the same step.
func (d *dialect) reserveInProject() string {
	return d.reserveInProjectReturning("id, run_id, name, attempt")
}

// reserveInProjectReturning is reserveInProject returning the given
// columns of the step.
func (d *dialect) reserveInProjectReturning(returning string) string {
	return takeStep + `
	WHERE id = (SELECT s.id FROM steps s WHERE s.project_id = ? AND ` + stateIs("s.state", engine.StepReady) + ` AND s.not_before <= ? AND ` + d.agentHasLabels + `
		ORDER BY s.priority DESC, s.run_id, s.idx LIMIT 1` + d.skipLocked + `) AND ` + isReady + `
		AND ` + agentEnabled + `
	RETURNING ` + returning
}

// takeStep is the start of a reservation's UPDATE: the step runs for an
// agent under a new lease, with a fresh attempt. Its arguments: the state
// (running), the agent, the start, the lease id, its expiry and the same
// again as the base of the deadline.
const takeStep = `UPDATE steps SET state = ?, agent_id = ?, attempt = attempt + 1, started_at = ?, finished_at = NULL,
		exit_code = NULL, reason = '', error = '', outputs = '{}', not_before = 0,
		lease_id = ?, lease_expires = ?, deadline = CASE WHEN timeout_ms > 0 THEN ? + timeout_ms ELSE 0 END`

// agentEnabled is a reservation's condition that agent ? is not known to
// be other than enabled.
const agentEnabled = `NOT EXISTS (SELECT 1 FROM agents ag WHERE ag.id = ? AND ag.state <> '` + string(server.AgentEnabled) + `')`

// attemptOf is the data-modifying CTE that records the attempt of the step
// CTE s reserved, for agent ? in state ? under lease ? started at ?.
const attemptOf = `a AS (INSERT INTO step_attempts (step_id, attempt, run_id, agent_id, state, lease_id, started_at)
		SELECT id, attempt, run_id, ?, ?, ?, ? FROM s)`

// recordAttempt records the attempt of a step reserved by a statement of
// its own (SQLite).
func (s *DB) recordAttempt(tx *gorm.DB, r *reservation, agentID string, now time.Time) error {
	if _, err := s.exec(tx, `INSERT INTO step_attempts (step_id, attempt, run_id, agent_id, state, lease_id, started_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		r.StepID, r.Attempt, r.RunID, agentID, engine.StepRunning, r.LeaseID, now); err != nil {
		return fmt.Errorf("record attempt %d of step %s: %w", r.Attempt, r.StepID, err)
	}
	return nil
}

// scanReserved reads a reservation statement's row (PostgreSQL): the
// whole step, the run's sources and untrusted flag, then extra.
func scanReserved(rows resultRows, leaseID string, extra ...any) (*reservation, error) {
	row := &stepRow{}
	r := &reservation{LeaseID: leaseID, row: row, run: &server.Run{}}
	if err := scanStep(rows, row, append([]any{&r.source, &r.ciSource, &r.run.Untrusted}, extra...)...); err != nil {
		return nil, err
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	r.StepID, r.RunID, r.Name, r.Attempt, r.run.ID = row.ID, row.RunID, row.Name, row.Attempt, row.RunID
	return r, nil
}

// ReserveStep gives agentID the next step in the fair queue (see
// pickProject; within the project: highest priority, then oldest run, then
// runbook order) with one conditional UPDATE, so two agents can never take
// the same step; it issues a new lease, records the attempt, and marks the
// run running. Nothing is reserved while maxRunning steps run fleet-wide
// (0: no limit). The step's deadline on the server's clock is its timeout
// plus one lease length, the budget for the agent to stop it and report.
//
// With several replicas (PostgreSQL), the limits stay exact: a global limit
// makes reservations take turns on an advisory lock, and a reservation in
// a project with a limit locks its row before it counts its running steps.
func (s *DB) ReserveStep(ctx context.Context, agentID string, lease time.Duration) (*server.Step, *server.Run, error) {
	return s.ReserveStepAs(ctx, agentID, "", lease)
}

// ReserveStepAs is ReserveStep under a lease id of the caller's; empty
// draws a fresh one.
func (s *DB) ReserveStepAs(ctx context.Context, agentID, leaseID string, lease time.Duration) (*server.Step, *server.Run, error) {
	// Most polls of an idle fleet find nothing: ask a reader first, so
	// they take no turn on the one writer (10,000 idle agents rescan about
	// 2,000 times a second). A step made Ready after this read wakes the
	// caller, which registered its waiter before calling.
	var due []int
	if err := s.r.WithContext(ctx).Raw(`SELECT 1 FROM steps WHERE `+isReady+` AND not_before <= ? LIMIT 1`,
		s.now().UnixMilli()).Scan(&due).Error; err != nil {
		return nil, nil, fmt.Errorf("any ready step: %w", err)
	}
	if len(due) == 0 {
		return nil, nil, nil
	}
	var r *reservation
	err := s.transaction(ctx, func(tx *gorm.DB) error {
		var err error
		r, err = s.reserve(tx, agentID, leaseID, lease)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return s.handed(ctx, r)
}

// reserve is ReserveStepAs in the caller's transaction.
func (s *DB) reserve(tx *gorm.DB, agentID, leaseID string, lease time.Duration) (*reservation, error) {
	now := s.now()
	if s.MaxRunning > 0 {
		if s.d.locks {
			if err := tx.Exec(`SELECT pg_advisory_xact_lock(?)`, lockPool).Error; err != nil {
				return nil, fmt.Errorf("lock the pool: %w", err)
			}
		}
		var running int64
		if err := tx.Model(&stepRow{}).Where(isRunning).Count(&running).Error; err != nil {
			return nil, fmt.Errorf("count running steps: %w", err)
		}
		if running >= int64(s.MaxRunning) {
			return nil, nil
		}
	}
	projects, err := s.pickProject(tx, now, agentID)
	if err != nil {
		return nil, err
	}
	for _, project := range projects {
		if r, err := s.reserveIn(tx, project, agentID, leaseID, now, lease); err != nil || r != nil {
			return r, err
		}
	}
	return nil, nil
}

// pickProject lists the projects the agent may take a step of now, best
// first (dialect.pickProject).
func (s *DB) pickProject(tx *gorm.DB, now time.Time, agentID string) ([]candidate, error) {
	rows, err := s.query(tx, s.d.pickProject(), now.UnixMilli(), agentID)
	if err != nil {
		return nil, fmt.Errorf("pick project: %w", err)
	}
	defer rows.Close()
	var out []candidate
	for rows.Next() {
		var c candidate
		if err := rows.Scan(&c.ID, &c.Name, &c.MaxRunning, &c.Served, &c.Latest); err != nil {
			return nil, fmt.Errorf("pick project: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("pick project: %w", err)
	}
	return out, nil
}

// candidate is a project pickProject found with a step to hand out.
type candidate struct {
	ID, Name       string
	MaxRunning     int
	Served, Latest int64
}

// reserveIn reserves the project's best step for the agent, if it has one
// the agent can take and is below its concurrency limit. On SQLite the
// transaction that picked the project is the only writer, so the pick's
// limit check holds; with several replicas (PostgreSQL), a project with a
// limit has its row locked and its running steps counted again. A
// project without one is not locked: its reservations would all take
// turns on that row, a commit at a time.
func (s *DB) reserveIn(tx *gorm.DB, c candidate, agentID, leaseID string, now time.Time, lease time.Duration) (*reservation, error) {
	projectID := c.ID
	if s.d.locks && c.MaxRunning > 0 {
		var p projectRow
		if err := s.locking(tx).Where("id = ?", projectID).Take(&p).Error; err != nil {
			return nil, fmt.Errorf("project %s: %w", projectID, err)
		}
		if p.MaxRunning > 0 {
			var running int64
			if err := tx.Model(&stepRow{}).Where("project_id = ? AND "+isRunning, projectID).Count(&running).Error; err != nil {
				return nil, fmt.Errorf("count running steps of project %s: %w", p.Name, err)
			}
			if running >= int64(p.MaxRunning) {
				return nil, nil
			}
		}
	}
	if leaseID == "" {
		leaseID = uuid.NewString()
	}
	expires := ceilMilli(now.Add(lease))
	if s.d.dollars {
		return s.reserveInOneStatement(tx, c, agentID, leaseID, now, expires)
	}
	r := &reservation{LeaseID: leaseID}
	err := s.queryRow(tx, s.d.reserveInProject(), engine.StepRunning, agentID, now, leaseID, expires, expires,
		projectID, now.UnixMilli(), agentID, agentID).Scan(&r.StepID, &r.RunID, &r.Name, &r.Attempt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil // another replica took the last one meanwhile
	}
	if err != nil {
		return nil, fmt.Errorf("reserve step: %w", err)
	}
	if err := s.recordAttempt(tx, r, agentID, now); err != nil {
		return nil, err
	}
	started, err := s.exec(tx, `UPDATE runs SET state = ?, started_at = ? WHERE id = ? AND state IN (?, ?)`,
		engine.RunRunning, now, r.RunID, engine.RunPending, engine.RunWaiting)
	if err != nil {
		return nil, fmt.Errorf("start run %s: %w", r.RunID, err)
	}
	// Untrusted decides whether the step may have the repository's
	// credentials; it is read in the transaction that reserves the step.
	r.run = &server.Run{ID: r.RunID, Project: c.Name}
	if err := s.readRunSources(tx, r); err != nil {
		return nil, err
	}
	n, _ := started.RowsAffected()
	return r, s.reserved(tx, c, r, n == 1)
}

// readRunSources reads what a reservation needs of its step's run: its
// sources and whether it is untrusted.
func (s *DB) readRunSources(tx *gorm.DB, r *reservation) error {
	if err := s.queryRow(tx, `SELECT source, ci_source, untrusted FROM runs WHERE id = ?`, r.RunID).
		Scan(&r.source, &r.ciSource, &r.run.Untrusted); err != nil {
		return fmt.Errorf("sources of run %s: %w", r.RunID, err)
	}
	return nil
}

// reserved finishes a reservation in project c: the project's served
// mark, and the notifications of the step (and its run, if it started).
func (s *DB) reserved(tx *gorm.DB, c candidate, r *reservation, runStarted bool) error {
	// served orders projects with equal shares: the one served longest ago
	// goes first. A project that was the last one served already has the
	// latest mark, so the order would not change: its row is left alone
	// (with one busy project, every reservation rewrote the same row).
	if c.Served == 0 || c.Served != c.Latest {
		if err := s.write(tx, "serve project "+c.Name, `UPDATE projects SET served = `+s.d.nextServed+` WHERE id = ?`, c.ID); err != nil {
			return err
		}
	}
	return s.notifyReserved(tx, r, runStarted)
}

// notifyReserved queues the notifications of a reservation: the step
// running, and its run, if it started.
func (s *DB) notifyReserved(tx *gorm.DB, r *reservation, runStarted bool) error {
	if runStarted {
		if err := s.notify(tx, r.RunID, "", string(engine.RunRunning), ""); err != nil {
			return err
		}
	}
	return s.notify(tx, r.RunID, r.Name, string(engine.StepRunning), "")
}

// reserveInOneStatement is reserveIn's reservation on PostgreSQL, where
// each statement is a round trip to another process: the step, its
// attempt, the run's start and what the reservation needs of the run, in
// one statement of data-modifying CTEs, which also returns the whole step.
func (s *DB) reserveInOneStatement(tx *gorm.DB, c candidate, agentID, leaseID string, now time.Time, expires int64) (*reservation, error) {
	q := `WITH s AS (` + s.d.reserveInProjectReturning("*") + `),
	` + attemptOf + `,
	r AS (UPDATE runs SET state = ?, started_at = ? WHERE id = (SELECT run_id FROM s) AND state IN (?, ?) RETURNING id)
SELECT ` + stepColumns("s") + `, runs.source, runs.ci_source, runs.untrusted, EXISTS (SELECT 1 FROM r)
FROM s JOIN runs ON runs.id = s.run_id`
	rows, err := s.query(tx, q, engine.StepRunning, agentID, now, leaseID, expires, expires, c.ID, now.UnixMilli(), agentID, agentID,
		agentID, engine.StepRunning, leaseID, now,
		engine.RunRunning, now, engine.RunPending, engine.RunWaiting)
	if err != nil {
		return nil, fmt.Errorf("reserve step: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		return nil, rows.Err() // another replica took the last one meanwhile
	}
	var started bool
	r, err := scanReserved(rows, leaseID, &started)
	if err != nil {
		return nil, fmt.Errorf("reserve step: %w", err)
	}
	r.run.Project = c.Name
	return r, s.reserved(tx, c, r, started)
}

// reserveSuccessor is the fair queue's choice made cheaply for the common
// case of a completion: the step it just made Ready (rs, whose update is
// held, so no other transaction can see it Ready) goes to the agent that
// finished its predecessor when the queue has nothing to put first. That is: no pool
// limit, no limit on the step's project, no Ready step of another project
// (a completion there goes through the fair pick), no Ready step of its
// project with a higher priority; and, as for any reservation, the step
// is due, the agent has its labels and is enabled. Each condition is an
// index probe (a scalar subquery ordered by the index's columns, LIMIT 1:
// as NOT EXISTS, PostgreSQL made each an anti-join over a bitmap of every
// Ready step's index entry): the reservation scans no
// queue front, where every agent's reservation meets the others', and a
// run in progress continues on the agent that ran its previous step. nil
// when a condition does not hold: the caller reserves through the pick.
// This is SQLite's; PostgreSQL's goes with the COMMIT
// (reserveSuccessorAtCommit).
func (s *DB) reserveSuccessor(tx *gorm.DB, rs readyStep, agentID, leaseID string, lease time.Duration) (*reservation, error) {
	if s.MaxRunning > 0 || rs.from != engine.StepPending {
		return nil, nil
	}
	leaseID, now, cols, args := s.successorArgs(rs, agentID, leaseID, lease)
	r := &reservation{LeaseID: leaseID, run: &server.Run{}}
	var projectID string
	err := s.queryRow(tx, s.d.reserveSuccessorStep(cols, "id, run_id, name, attempt, project_id"), args...).
		Scan(&r.StepID, &r.RunID, &r.Name, &r.Attempt, &projectID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reserve step %s: %w", rs.id, err)
	}
	if err := s.recordAttempt(tx, r, agentID, now); err != nil {
		return nil, err
	}
	if err := s.write(tx, "serve project "+projectID, fmt.Sprintf(servedSQL, s.d.nextServed, "?"), projectID); err != nil {
		return nil, err
	}
	r.run.ID = r.RunID
	if err := s.queryRow(tx, `SELECT name FROM projects WHERE id = ?`, projectID).Scan(&r.run.Project); err != nil {
		return nil, fmt.Errorf("project of step %s: %w", r.StepID, err)
	}
	if err := s.readRunSources(tx, r); err != nil {
		return nil, err
	}
	return r, s.notifyReserved(tx, r, false)
}

// reserveSuccessorAtCommit is reserveSuccessor on PostgreSQL, in a
// pipeline: the reservation goes with the completion's writes and the
// COMMIT, in one round trip, and next is set when its answer comes (left
// nil when a condition did not hold: the same statement then makes the
// step Ready). false, queueing nothing, where it cannot: a pool limit, or
// a project that wants notifications (the step's is written in the
// reservation's transaction); the caller then reserves after the commit.
// It waits for no lock: the project's served mark is left to whoever
// holds the project's row (pgGroup).
func (s *DB) reserveSuccessorAtCommit(tx *gorm.DB, rs readyStep, agentID, leaseID string, lease time.Duration, next **reservation) (bool, error) {
	if s.MaxRunning > 0 || rs.from != engine.StepPending || pipelineOf(tx) == nil {
		return false, nil
	}
	if target, err := s.notifyTarget(tx, rs.run); err != nil || target.on {
		return false, err
	}
	leaseID, now, cols, args := s.successorArgs(rs, agentID, leaseID, lease)
	args = append(args, agentID, engine.StepRunning, leaseID, now)
	// Not reserved, the step is made Ready by the same statement.
	for _, c := range cols {
		args = append(args, rs.updates[c])
	}
	args = append(args, engine.StepReady, rs.id)
	return true, s.readLater(tx, "reserve step "+rs.id, s.successorOneStatement(cols), args,
		func(rows resultRows) error {
			r, err := readSuccessor(rows, rs, leaseID)
			*next = r
			return err
		})
}

// successorArgs are the arguments of reserveSuccessorStep's statement for
// rs, under leaseID (a new one if empty), now, and the columns of its
// update to Ready that the statement sets.
func (s *DB) successorArgs(rs readyStep, agentID, leaseID string, lease time.Duration) (string, time.Time, []string, []any) {
	if leaseID == "" {
		leaseID = uuid.NewString()
	}
	now := s.now()
	expires := ceilMilli(now.Add(lease))
	// The step's update to Ready (its ready_at, its rendered values) is
	// made by the reservation's own UPDATE: the step goes from pending to
	// running in one row version.
	var cols []string
	for c := range rs.updates {
		if c != "state" {
			cols = append(cols, c)
		}
	}
	slices.Sort(cols)
	args := []any{engine.StepRunning, agentID, now, leaseID, expires, expires}
	for _, c := range cols {
		args = append(args, rs.updates[c])
	}
	return leaseID, now, cols, append(args, rs.id, now.UnixMilli(), agentID, agentID)
}

// servedSQL sets a project's served mark (%s: the next mark, the
// project), only when that changes the order (as reserved does).
const servedSQL = `UPDATE projects SET served = %s WHERE id = %s AND (served = 0 OR served <> (SELECT MAX(served) FROM projects))`

// successorOneStatement is reserveSuccessorAtCommit's statement: the
// step, its attempt and the project's served mark in one statement of
// data-modifying CTEs, returning the whole step and what the reservation
// needs of its run (which is running already: the step that just ended
// ran in it). If the step is not reserved, the statement makes it Ready
// (setting cols and the state, as its arguments after the others say):
// the two updates of the row never both happen. The served mark is not
// waited for: a project row another transaction holds is being marked
// by it (SKIP LOCKED).
func (s *DB) successorOneStatement(cols []string) string {
	key := strings.Join(cols, ",")
	if q, ok := successorStatements.Load(key); ok {
		return q.(string)
	}
	ready := `UPDATE steps SET `
	for _, c := range cols {
		ready += c + ` = ?, `
	}
	ready += `state = ? WHERE id = ? AND ` + stateIs("state", engine.StepPending) + ` AND NOT EXISTS (SELECT 1 FROM s)`
	served := fmt.Sprintf(`UPDATE projects SET served = %s WHERE id = (SELECT id FROM projects WHERE id = (SELECT project_id FROM s)
		AND (served = 0 OR served <> (SELECT MAX(served) FROM projects)) FOR NO KEY UPDATE SKIP LOCKED)`, s.d.nextServed)
	q := `WITH s AS (` + s.d.reserveSuccessorStep(cols, "*") + `),
	` + attemptOf + `,
	p AS (` + served + `),
	r AS (` + ready + `)
SELECT ` + stepColumns("s") + `, runs.source, runs.ci_source, runs.untrusted, projects.name
FROM s JOIN runs ON runs.id = s.run_id JOIN projects ON projects.id = s.project_id`
	successorStatements.Store(key, q)
	return q
}

// successorStatements caches successorOneStatement's statements.
var successorStatements sync.Map // string -> string

// readSuccessor reads successorOneStatement's answer: the reservation of
// rs, or nil.
func readSuccessor(rows resultRows, rs readyStep, leaseID string) (*reservation, error) {
	if !rows.Next() {
		return nil, rows.Close()
	}
	var project string
	r, err := scanReserved(rows, leaseID, &project)
	if err != nil {
		return nil, fmt.Errorf("reserve step %s: %w", rs.id, err)
	}
	r.run.Project = project
	return r, rows.Close()
}

// successorSQL caches reserveSuccessorStep's statements.
var successorSQL sync.Map // string -> string

// reserveSuccessorStep is reserveSuccessor's conditional UPDATE of a
// pending step to running, setting also the columns cols (its update to
// Ready), returning the given columns.
func (d *dialect) reserveSuccessorStep(cols []string, returning string) string {
	key := d.name + "|" + strings.Join(cols, ",") + "|" + returning
	if q, ok := successorSQL.Load(key); ok {
		return q.(string)
	}
	var set strings.Builder
	for _, c := range cols {
		set.WriteString(", " + c + " = ?")
	}
	ready := func(alias string) string { return stateIs(alias+".state", engine.StepReady) }
	q := takeStep + set.String() + `
	WHERE id = (SELECT s.id FROM steps s WHERE s.id = ? AND ` + stateIs("s.state", engine.StepPending) + ` AND s.not_before <= ? AND ` + d.agentHasLabels + `
			AND (SELECT p.max_running FROM projects p WHERE p.id = s.project_id) = 0
			AND (SELECT 1 FROM steps o WHERE o.project_id = s.project_id AND ` + ready("o") + ` AND o.priority > s.priority
				ORDER BY o.project_id, o.priority DESC LIMIT 1) IS NULL
			AND (SELECT 1 FROM steps o WHERE o.project_id < s.project_id AND ` + ready("o") + ` ORDER BY o.project_id DESC LIMIT 1) IS NULL
			AND (SELECT 1 FROM steps o WHERE o.project_id > s.project_id AND ` + ready("o") + ` ORDER BY o.project_id LIMIT 1) IS NULL)
		AND ` + agentEnabled + `
	RETURNING ` + returning
	successorSQL.Store(key, q)
	return q
}

// reservation is what the transaction that reserved a step knows of it;
// handed reads the rest after the commit.
type reservation struct {
	StepID, RunID, Name, LeaseID string
	Attempt                      int
	run                          *server.Run // project, untrusted
	source, ciSource             string      // the run's, as stored
	row                          *stepRow    // the whole step, if the reservation returned it
}

// handed returns the step r reserved, as it is stored, with its run. It
// reads the step from a reader after the reservation's commit: on SQLite,
// reading a whole step back in the reservation's transaction took the one
// writer a third as long as reserving it. A step no longer under r's
// lease (its lease already lapsed and it was reserved again) is nil.
func (s *DB) handed(ctx context.Context, r *reservation) (*server.Step, *server.Run, error) {
	if r == nil {
		return nil, nil, nil
	}
	var err error
	if r.run.Source, err = sourceOf(r.source); err != nil {
		return nil, nil, err
	}
	if r.run.CISource, err = sourceOf(r.ciSource); err != nil {
		return nil, nil, err
	}
	row := r.row
	if row == nil {
		var rows []stepRow
		if err := s.r.WithContext(ctx).Where("id = ?", r.StepID).Limit(1).Find(&rows).Error; err != nil {
			return nil, nil, fmt.Errorf("step %s: %w", r.StepID, err)
		}
		if len(rows) == 0 {
			return nil, nil, nil
		}
		row = &rows[0]
	}
	if row.LeaseID != r.LeaseID || row.Attempt != r.Attempt {
		return nil, nil, nil
	}
	step, err := row.domain()
	if err != nil {
		return nil, nil, err
	}
	return step, r.run, nil
}

// LeasedStep returns the step running for agentID under leaseID, with its
// run as ReserveStep returns it; nil when there is none.
func (s *DB) LeasedStep(ctx context.Context, agentID, leaseID string) (*server.Step, *server.Run, error) {
	var rows []stepRow
	if err := s.r.WithContext(ctx).Where("agent_id = ? AND "+isRunning+" AND lease_id = ?", agentID, leaseID).
		Limit(1).Find(&rows).Error; err != nil {
		return nil, nil, fmt.Errorf("step under lease %s: %w", leaseID, err)
	}
	if len(rows) == 0 {
		return nil, nil, nil
	}
	var names []string
	if err := s.r.WithContext(ctx).Raw(`SELECT name FROM projects WHERE id = ?`, rows[0].ProjectID).Scan(&names).Error; err != nil || len(names) != 1 {
		return nil, nil, fmt.Errorf("project of step %s: %v", rows[0].ID, err)
	}
	r := &reservation{StepID: rows[0].ID, RunID: rows[0].RunID, Name: rows[0].Name, LeaseID: leaseID, Attempt: rows[0].Attempt,
		row: &rows[0], run: &server.Run{ID: rows[0].RunID, Project: names[0]}}
	if err := s.readRunSources(s.r.WithContext(ctx), r); err != nil {
		return nil, nil, err
	}
	return s.handed(ctx, r)
}

// NextRetryAt returns when the earliest Ready step held back by a retry
// delay becomes reservable; the zero time when there is none.
func (s *DB) NextRetryAt(ctx context.Context) (time.Time, error) {
	var next []int64
	if err := s.r.WithContext(ctx).Raw(`SELECT COALESCE(MIN(not_before), 0) FROM steps WHERE `+isReady+` AND not_before > ?`,
		s.now().UnixMilli()).Scan(&next).Error; err != nil {
		return time.Time{}, fmt.Errorf("next retry: %w", err)
	}
	if len(next) == 0 || next[0] == 0 {
		return time.Time{}, nil
	}
	return time.UnixMilli(next[0]).UTC(), nil
}

// DueSteps counts the Ready steps past their retry delay, up to limit.
func (s *DB) DueSteps(ctx context.Context, limit int) (int, error) {
	var n []int
	if err := s.r.WithContext(ctx).Raw(`SELECT COUNT(*) FROM (SELECT 1 FROM steps WHERE `+isReady+` AND not_before <= ? LIMIT ?) due`,
		s.now().UnixMilli(), limit).Scan(&n).Error; err != nil {
		return 0, fmt.Errorf("due steps: %w", err)
	}
	if len(n) == 0 {
		return 0, nil
	}
	return n[0], nil
}

// AppendLog stores a chunk of output for the agent's current attempt of a
// running step. A chunk already stored at the same offset is ignored, so an
// agent may safely retry an upload.
func (s *DB) AppendLog(ctx context.Context, l server.Lease, offset int64, data []byte, times string, redact server.Redactor) error {
	return s.transaction(ctx, func(tx *gorm.DB) error {
		if err := s.lockStep(tx, l.StepID); err != nil {
			return err
		}
		if _, err := s.ownedStep(tx, l); err != nil {
			return err
		}
		return s.appendLog(tx, l, server.LogAppend{Offset: offset, Data: data, Times: times, Redact: redact})
	})
}

// appendLog stores a chunk of the leased attempt's log, masked across the
// chunk before it, unless one is stored at that offset already.
func (s *DB) appendLog(tx *gorm.DB, l server.Lease, c server.LogAppend) error {
	args, err := logChunkArgs(tx, l, c)
	if err != nil {
		return err
	}
	return s.write(tx, fmt.Sprintf("log of step %s at offset %d", l.StepID, c.Offset), insertLogChunk, args...)
}

// insertLogChunk stores a chunk of an attempt's log (logChunkArgs).
const insertLogChunk = `INSERT INTO step_logs (step_id, attempt, byte_offset, data, times) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`

// logChunkArgs are insertLogChunk's arguments for chunk c of the leased
// attempt's log, masked across the chunk before it.
func logChunkArgs(tx *gorm.DB, l server.Lease, c server.LogAppend) ([]any, error) {
	chunk := c.Data
	if c.Redact != nil && c.Redact.Longest() > 0 {
		var err error
		if chunk, err = redactAcross(tx, l, c.Offset, c.Data, c.Redact); err != nil {
			return nil, err
		}
	}
	return []any{l.StepID, l.Attempt, c.Offset, chunk, c.Times}, nil
}

// redactAcross masks data joined to the tail of the chunk stored before it,
// so a secret split across the two is found, and rewrites that tail if it
// changed. Lengths never change, so offsets stay true.
func redactAcross(tx *gorm.DB, l server.Lease, offset int64, data []byte, redact server.Redactor) ([]byte, error) {
	var prev []stepLogRow
	if offset > 0 {
		if err := tx.Where("step_id = ? AND attempt = ? AND byte_offset < ?", l.StepID, l.Attempt, offset).
			Order("byte_offset DESC").Limit(1).Find(&prev).Error; err != nil {
			return nil, fmt.Errorf("log before offset %d: %w", offset, err)
		}
	}
	var tail []byte
	if len(prev) == 1 && prev[0].ByteOffset+int64(len(prev[0].Data)) == offset {
		p := prev[0].Data
		tail = p[max(0, len(p)-(redact.Longest()-1)):]
	}
	buf := append(append([]byte(nil), tail...), data...)
	redact.Redact(buf)
	if len(tail) > 0 && !bytes.Equal(buf[:len(tail)], tail) {
		fixed := append(prev[0].Data[:len(prev[0].Data)-len(tail):len(prev[0].Data)-len(tail)], buf[:len(tail)]...)
		if err := tx.Model(&stepLogRow{}).Where("step_id = ? AND attempt = ? AND byte_offset = ?", l.StepID, l.Attempt, prev[0].ByteOffset).
			Update("data", fixed).Error; err != nil {
			return nil, fmt.Errorf("mask log before offset %d: %w", offset, err)
		}
	}
	return buf[len(tail):], nil
}

// HeldStep returns the step a lease holds.
func (s *DB) HeldStep(ctx context.Context, l server.Lease) (*server.Step, error) {
	row, err := s.ownedStep(s.db.WithContext(ctx), l)
	if err != nil {
		return nil, err
	}
	return row.domain()
}

// StepSecrets returns the project and secret names of a step the lease holds.
func (s *DB) StepSecrets(ctx context.Context, l server.Lease) (string, string, []string, error) {
	var project, env string
	var names []string
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		row, err := s.ownedStep(tx, l)
		if err != nil {
			return err
		}
		var p projectRow
		if err := tx.Where("id = ?", row.ProjectID).Take(&p).Error; err != nil {
			return fmt.Errorf("project of step %s: %w", l.StepID, err)
		}
		project, env = p.Name, row.Environment
		return json.Unmarshal([]byte(row.Secrets), &names)
	})
	return project, env, names, err
}

// ownedStep returns the step if it is running under the lease; otherwise
// the caller's view is stale (ECONFLICT) or wrong (ENOTFOUND).
func (s *DB) ownedStep(tx *gorm.DB, l server.Lease) (*stepRow, error) {
	var row stepRow
	if err := tx.Where("id = ?", l.StepID).Take(&row).Error; err != nil {
		return nil, notFound(err, "step %q not found", l.StepID)
	}
	return &row, holds(&row, l)
}

// holds says whether the step row is running under the lease: nil, or
// ECONFLICT naming why not.
func holds(row *stepRow, l server.Lease) error {
	if row.AgentID != l.AgentID || row.Attempt != l.Attempt {
		return server.Errorf(server.ECONFLICT, "step %q attempt %d is not held by this agent", l.StepID, l.Attempt)
	}
	if row.State != string(engine.StepRunning) {
		return server.Errorf(server.ECONFLICT, "step %q is %s, not running", l.StepID, row.State)
	}
	if row.LeaseID != l.ID {
		return server.Errorf(server.ECONFLICT, "lease %q of step %q is not current", l.ID, l.StepID)
	}
	return nil
}

// reportedStep is ownedStep for a result: only what recording it reads
// (the step's identity, holder, cancel request, retry policy and assert),
// straight from the connection. Where rows are locked (PostgreSQL) it
// locks the step's run, then the step (lockStepAndRun), with the same
// statement. With it, in the same round trip (a later statement, which
// sees what was committed before the lock was granted), it reads the
// steps that depend on the step (the pending ones are what advance reads
// first).
func (s *DB) reportedStep(tx *gorm.DB, l server.Lease) (*stepRow, *server.Step, []stepRow, error) {
	var row stepRow
	q := `SELECT s.id, s.run_id, s.name, s.agent_id, s.attempt, s.state, s.lease_id, s.cancel_requested, s.retry, s.assert`
	grouped := false
	if p := pipelineOf(tx); p != nil && p.grouped {
		grouped = true // in a group, after its first: it must not wait (pgGroup)
		q += ` FROM runs r JOIN steps s ON s.run_id = r.id WHERE s.id = ? FOR NO KEY UPDATE SKIP LOCKED`
	} else if s.d.locks {
		q += ` FROM runs r JOIN steps s ON s.run_id = r.id WHERE s.id = ? FOR NO KEY UPDATE`
	} else {
		q += ` FROM steps s WHERE s.id = ?`
	}
	found := false
	if err := s.readLater(tx, "step "+l.StepID, q, []any{l.StepID}, func(rows resultRows) error {
		if found = rows.Next(); !found {
			return nil
		}
		return rows.Scan(&row.ID, &row.RunID, &row.Name, &row.AgentID, &row.Attempt, &row.State, &row.LeaseID, &row.CancelRequested, &row.Retry, &row.Assert)
	}); err != nil {
		return nil, nil, nil, err
	}
	var dependents []stepRow
	if err := s.readLater(tx, "dependents of step "+l.StepID, dependentsOfStepSQL, []any{l.StepID}, func(rows resultRows) error {
		var err error
		dependents, err = pendingOf(rows)
		return err
	}); err != nil {
		return nil, nil, nil, err
	}
	if err := s.flush(tx); err != nil {
		return nil, nil, nil, err
	}
	if !found && grouped {
		return nil, nil, nil, errRunAlone // locked by another transaction, or not there: alone, it finds out
	}
	if !found {
		return nil, nil, nil, server.Errorf(server.ENOTFOUND, "step %q not found", l.StepID)
	}
	if err := holds(&row, l); err != nil {
		return &row, nil, nil, err
	}
	step := &server.Step{ID: row.ID, RunID: row.RunID, Name: row.Name, State: engine.StepState(row.State), Attempt: row.Attempt}
	if err := json.Unmarshal([]byte(row.Retry), &step.Retry); err != nil {
		return nil, nil, nil, fmt.Errorf("step %s: retry: %w", row.ID, err)
	}
	if err := json.Unmarshal([]byte(row.Assert), &step.Assert); err != nil {
		return nil, nil, nil, fmt.Errorf("step %s: assert: %w", row.ID, err)
	}
	return &row, step, dependents, nil
}

// CompleteStep records the result of an attempt, then, in the same
// transaction, either makes the step Ready again for a retry (its policy
// allows one for this failure) or advances the DAG and the run state.
// Repeating the report of an attempt already recorded with the same result
// is acknowledged without change; a different one is ECONFLICT.
func (s *DB) CompleteStep(ctx context.Context, res server.StepResult) (int, error) {
	ready, _, err := s.completeStep(ctx, res)
	return ready, err
}

// completeStep is CompleteStep that also says whether the report was a
// repeat of one already recorded.
func (s *DB) completeStep(ctx context.Context, res server.StepResult) (ready int, repeated bool, err error) {
	err = s.transaction(ctx, func(tx *gorm.DB) error {
		readied, rep, err := s.record(tx, res, false)
		ready, repeated = len(readied), rep
		return err
	})
	return ready, repeated, err
}

// CompleteAndReserve is CompleteStep, then ReserveStepAs for the same
// agent under leaseID: the agent's next step, handed out with the result.
// A repeated report (its first answer was lost) gets the step reserved
// under leaseID when it was first recorded, if that step still runs for
// the agent, rather than another. Failing to reserve never undoes the
// result.
//
// On SQLite the reservation is made in the completion's transaction (one
// turn of the writer), in a savepoint of its own.
//
// On PostgreSQL, completions that arrive together share a transaction
// (pgGroup), where only the first may wait for a lock: the step a
// completion made Ready is reserved with it without waiting
// (reserveSuccessorAtCommit); any other reservation, which may wait, is
// made after the group's commit, in a transaction of its own, by the
// others. A completion whose successor is reserved takes two round trips:
// the step's lock with the read of its dependents, then its writes with
// the reservation and the COMMIT. If the successor was not reserved (the
// queue put another step first), the same statement made it Ready.
func (s *DB) CompleteAndReserve(ctx context.Context, res server.StepResult, leaseID string, lease time.Duration) (server.Completion, error) {
	var c server.Completion
	var repeated, reserveFailed, atCommit, reserveAfter bool
	var next *reservation
	err := s.completion(ctx, func(tx *gorm.DB) error {
		c, next, reserveFailed, atCommit, reserveAfter = server.Completion{}, nil, false, false, false
		readied, rep, err := s.record(tx, res, true)
		c.Ready, repeated = len(readied), rep
		if err != nil || repeated {
			return err
		}
		if s.d.locks {
			// PostgreSQL: the successor's reservation, which waits for no
			// lock, goes with the COMMIT. Any other is made in the
			// transaction too, except in a group after its first
			// completion, which must wait for no lock (pgGroup): it is
			// then made after the commit, in a transaction of its own. A
			// failed reservation rolls the transaction back (a savepoint
			// would be a round trip more), and the result is recorded
			// again alone, below.
			if len(readied) > 0 && !readied[0].written {
				if atCommit, err = s.reserveSuccessorAtCommit(tx, readied[0], res.AgentID, leaseID, lease, &next); err != nil {
					reserveFailed = true
					return err
				}
				if atCommit {
					return s.writeReady(tx, readied[1:]...)
				}
			}
			if err := s.writeReady(tx, readied...); err != nil {
				return err
			}
			if p := pipelineOf(tx); p != nil && p.grouped {
				reserveAfter = true
				return nil
			}
			next, err = s.reserve(tx, res.AgentID, leaseID, lease)
			reserveFailed = err != nil
			return err
		}
		c.NextErr = savepoint(tx, "next", func() error {
			var err error
			next, err = s.reserveNext(tx, readied, res.AgentID, leaseID, lease)
			return err
		})
		if c.NextErr != nil {
			// Rolled back with the savepoint: what was made Ready stays so.
			next = nil
			return s.writeReady(tx, readied...)
		}
		return nil
	})
	if reserveFailed || atCommit && err != nil {
		// What failed may have been the reservation, which went with the
		// COMMIT.
		next, c.NextErr = nil, err
		if c.Ready, repeated, err = s.completeStep(ctx, res); err != nil {
			return c, err
		}
	}
	if err != nil {
		return c, err
	}
	if !repeated {
		if (atCommit || reserveAfter) && next == nil && c.NextErr == nil {
			// The successor was not reserved, or the reservation was
			// left for after the commit: the agent's next step comes
			// from the queue.
			c.Next, c.NextRun, c.NextErr = s.ReserveStepAs(ctx, res.AgentID, leaseID, lease)
			return c, nil
		}
		if c.NextErr == nil {
			c.Next, c.NextRun, c.NextErr = s.handed(ctx, next)
		}
		return c, nil
	}
	if c.Next, c.NextRun, c.NextErr = s.LeasedStep(ctx, res.AgentID, leaseID); c.Next != nil || c.NextErr != nil {
		return c, nil
	}
	c.Next, c.NextRun, c.NextErr = s.ReserveStepAs(ctx, res.AgentID, leaseID, lease)
	return c, nil
}

// reserveNext reserves the next step for the agent whose completion made
// the steps readied Ready (their updates held): the first of them if the
// queue has nothing to put first (reserveSuccessor, which writes its
// update with the reservation's), else through the fair pick. It writes
// the others' updates.
func (s *DB) reserveNext(tx *gorm.DB, readied []readyStep, agentID, leaseID string, lease time.Duration) (*reservation, error) {
	if len(readied) > 0 && !readied[0].written {
		r, err := s.reserveSuccessor(tx, readied[0], agentID, leaseID, lease)
		if err != nil {
			return nil, err
		}
		if r != nil {
			return r, s.writeReady(tx, readied[1:]...)
		}
	}
	if err := s.writeReady(tx, readied...); err != nil {
		return nil, err
	}
	return s.reserve(tx, agentID, leaseID, lease)
}

// complete is CompleteStep inside the caller's transaction.
func (s *DB) complete(tx *gorm.DB, res server.StepResult) (int, error) {
	ready, _, err := s.record(tx, res, false)
	return len(ready), err
}

// record is complete, returning the steps it made Ready (with hold, their
// updates are the caller's to write) and saying whether the report
// repeated one already recorded. It locks the run and the step first, so a repeated report, the
// server's expiry and a cancel of the same step take turns, and each reads
// what the one before it wrote.
func (s *DB) record(tx *gorm.DB, res server.StepResult, hold bool) (ready []readyStep, repeated bool, err error) {
	lease := server.Lease{StepID: res.StepID, AgentID: res.AgentID, Attempt: res.Attempt, ID: res.LeaseID}
	// The step running under this lease is the common case; only a report
	// that finds it otherwise needs the attempt's record to tell a retried
	// report (acknowledged) from a stale one. (While the step runs under
	// the lease, its attempt has not ended: ending it moves the step on.)
	row, step, dependents, err := s.reportedStep(tx, lease)
	if errors.Is(err, errRunAlone) {
		return nil, false, err
	}
	if err != nil {
		var att attemptRow
		if aerr := tx.Where("step_id = ? AND attempt = ?", res.StepID, res.Attempt).Take(&att).Error; aerr != nil {
			if !errors.Is(aerr, gorm.ErrRecordNotFound) {
				return nil, false, fmt.Errorf("attempt %d of step %s: %w", res.Attempt, res.StepID, aerr)
			}
			return nil, false, err // ENOTFOUND for an unknown step, else ECONFLICT
		}
		if att.AgentID != res.AgentID || att.LeaseID != res.LeaseID {
			return nil, false, server.Errorf(server.ECONFLICT, "step %q attempt %d is not held by this agent under lease %q", res.StepID, res.Attempt, res.LeaseID)
		}
		if att.FinishedAt != nil {
			if att.Reported == reportKey(res) {
				return nil, true, nil // a retried report
			}
			return nil, false, server.Errorf(server.ECONFLICT, "step %q attempt %d already ended %s", res.StepID, res.Attempt, att.State)
		}
		return nil, false, err
	}
	var logArgs []any // PostgreSQL: the chunk goes with the step's UPDATE
	if res.Log != nil {
		// The last chunk of output comes with the result, stored before
		// the result is judged. (A retried or stale report stores none.)
		if s.d.locks && !step.Assert.ReadsOutput() {
			logArgs, err = logChunkArgs(tx, lease, *res.Log)
		} else {
			err = s.appendLog(tx, lease, *res.Log)
		}
		if err != nil {
			return nil, false, fmt.Errorf("log of step %s: %w", res.StepID, err)
		}
	}
	state, reason, errMsg, err := s.judge(tx, step, res)
	if err != nil {
		return nil, false, err
	}
	if row.CancelRequested && state != engine.StepSucceeded {
		state, reason = engine.StepCancelled, engine.ReasonCancelled
	}
	now := s.now()
	const endAttempt = `UPDATE step_attempts SET state = ?, exit_code = ?, reason = ?, error = ?, reported = ?, finished_at = ? WHERE step_id = ? AND attempt = ?`
	endArgs := []any{state, res.ExitCode, reason, errMsg, reportKey(res), now, res.StepID, res.Attempt}
	var with string // PostgreSQL: the attempt is ended (and the log chunk stored) by the step's UPDATE, one statement
	var withArgs []any
	if s.d.locks {
		with, withArgs = `WITH ended AS (`+endAttempt+`) `, endArgs
		if logArgs != nil {
			with, withArgs = `WITH ended AS (`+endAttempt+`), logged AS (`+insertLogChunk+`) `, append(endArgs, logArgs...)
		}
	} else if _, err := s.exec(tx, endAttempt, endArgs...); err != nil {
		return nil, false, fmt.Errorf("record attempt %d of step %s: %w", res.Attempt, res.StepID, err)
	}
	outputs := res.Outputs
	if outputs == nil {
		outputs = map[string]string{}
	}
	outputsJSON, err := json.Marshal(outputs)
	if err != nil {
		return nil, false, err
	}
	updates := map[string]any{"state": state, "exit_code": res.ExitCode, "reason": reason, "error": errMsg,
		"outputs": string(outputsJSON), "finished_at": now, "lease_expires": 0, "deadline": 0}
	delay, retry := time.Duration(0), false
	if state == engine.StepFailed {
		delay, retry = step.Retry.Retries(res.Attempt, reason)
	}
	if retry {
		updates["state"] = engine.StepReady
		updates["finished_at"] = nil
		updates["not_before"] = ceilMilli(now.Add(delay))
		updates["ready_at"] = ceilMilli(now.Add(delay))
	}
	if err := s.updateStepWith(tx, with, withArgs, row.ID, engine.StepRunning, updates); err != nil {
		return nil, false, fmt.Errorf("complete step %s: %w", row.ID, err)
	}
	if err := s.notify(tx, row.RunID, row.Name, fmt.Sprint(updates["state"]), string(reason)); err != nil {
		return nil, false, err
	}
	if retry {
		return []readyStep{{id: row.ID, name: row.Name, run: row.RunID, written: true}}, false, nil // Ready again, after its delay
	}
	ready, err = s.advanceFrom(tx, row.RunID, row.Name, knownState{state, string(reason)}, dependents, true, hold)
	return ready, false, err
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
	if step.Assert.ReadsOutput() {
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
// 1,000-step one. It returns the steps that became Ready (with hold, their
// updates are the caller's to write). wasRunning says
// that changed was running until now, so the run's state is running: while
// one of its steps runs, nothing sets it otherwise. ended is the state
// (and reason) changed ended in.
func (s *DB) advance(tx *gorm.DB, runID, changed string, ended knownState, wasRunning, hold bool) ([]readyStep, error) {
	dependents, err := s.pendingDependents(tx, runID, []string{changed})
	if err != nil {
		return nil, fmt.Errorf("dependents in run %s: %w", runID, err)
	}
	return s.advanceFrom(tx, runID, changed, ended, dependents, wasRunning, hold)
}

// advanceFrom is advance given the pending dependents of changed.
func (s *DB) advanceFrom(tx *gorm.DB, runID, changed string, ended knownState, dependents []stepRow, wasRunning, hold bool) ([]readyStep, error) {
	first := true
	ready, err := s.settleSteps(tx, runID, func(frontier []string) ([]stepRow, error) {
		if first {
			first = false
			return dependents, nil
		}
		return s.pendingDependents(tx, runID, frontier)
	}, []string{changed}, map[string]knownState{changed: ended}, hold)
	if err != nil {
		return nil, err
	}
	if len(ready) > 0 {
		// A step has ended and another is Ready: the counts can only say
		// running, so there is no need to count.
		if wasRunning {
			return ready, nil // and it says so already
		}
		return ready, s.markRunRunning(tx, runID)
	}
	return nil, s.updateRunState(tx, runID, s.now())
}

// pendingDependents returns the pending steps that depend on any of
// names, straight from the connection (a completion's hot path).
func (s *DB) pendingDependents(tx *gorm.DB, runID string, names []string) ([]stepRow, error) {
	if len(names) == 0 {
		return nil, nil
	}
	args := make([]any, 0, len(names)+1)
	args = append(args, runID)
	for _, n := range names {
		args = append(args, n)
	}
	rows, err := s.query(tx, dependentsSQL(len(names)), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out, err := pendingOf(rows)
	if err != nil {
		return nil, err
	}
	return out, rows.Close()
}

// pendingOf reads rows of stepColumns, keeping the pending steps.
func pendingOf(rows resultRows) ([]stepRow, error) {
	var out []stepRow
	for rows.Next() {
		var r stepRow
		if err := scanStep(rows, &r); err != nil {
			return nil, err
		}
		if r.State == string(engine.StepPending) {
			out = append(out, r)
		}
	}
	return out, rows.Err()
}

// dependentsOfStepSQL finds the steps that depend on step ?, as
// dependentsSQL does by name.
var dependentsOfStepSQL = `SELECT ` + stepColumns("s") + ` FROM steps c
	JOIN step_deps d ON d.run_id = c.run_id AND d.depends_on = c.name
	JOIN steps s ON s.id = d.step_id
	WHERE c.id = ?`

// dependentsSQL finds the steps of run ? that depend on any of n names,
// through step_deps, then by id; the caller keeps the pending ones. With
// the state in the statement, a plan made while the tables were small
// (PostgreSQL keeps one per statement) read every pending step of every
// run and joined them to step_deps.
func dependentsSQL(n int) string {
	return `SELECT ` + stepColumns("s") + ` FROM step_deps d JOIN steps s ON s.id = d.step_id
		WHERE d.run_id = ? AND d.depends_on IN (?` + strings.Repeat(", ?", n-1) + `)`
}

// settle repeatedly takes the pending steps that next returns for the
// frontier (the steps that just ended), lets the engine decide them, and
// persists the result: a step that becomes Ready gets its ${{ }} values
// rendered, and one whose condition or values cannot be evaluated fails.
// Steps that end this way (skipped, failed) form the next frontier. Then the
// run state is updated.
func (s *DB) settle(tx *gorm.DB, runID string, next func(frontier []string) ([]stepRow, error), frontier []string) (int, error) {
	ready, err := s.settleSteps(tx, runID, next, frontier, nil, false)
	if err != nil {
		return 0, err
	}
	if err := s.updateRunState(tx, runID, s.now()); err != nil {
		return 0, err
	}
	return len(ready), nil
}

// knownState is a step's state and reason as this transaction set them.
type knownState struct {
	state  engine.StepState
	reason string
}

// settleSteps is settle without the run state, returning the steps it
// made Ready; with hold, their updates are left to the caller (writeReady).
// known holds the states this transaction has set (nil: none yet); the
// steps it decides are added.
func (s *DB) settleSteps(tx *gorm.DB, runID string, next func(frontier []string) ([]stepRow, error), frontier []string, known map[string]knownState, hold bool) ([]readyStep, error) {
	if known == nil {
		known = map[string]knownState{}
	}
	var ready []readyStep // in the order they were made Ready
	now := s.now()
	facts := s.lazyRunFacts(tx, runID)
	for len(frontier) > 0 {
		candidates, err := next(frontier)
		if err != nil {
			return nil, fmt.Errorf("dependents in run %s: %w", runID, err)
		}
		if len(candidates) == 0 {
			break
		}
		g, err := s.subgraph(tx, runID, candidates, facts, known)
		if err != nil {
			return nil, err
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
				updates["ready_at"] = now.UnixMilli()
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
			if c.To == engine.StepReady {
				r := readyStep{id: g.ids[c.Step], name: c.Step, run: runID, from: c.From, updates: updates}
				if !hold {
					if err := s.writeReady(tx, r); err != nil {
						return nil, err
					}
					r.written = true
				}
				ready = append(ready, r)
				continue
			}
			if err := s.updateStep(tx, g.ids[c.Step], c.From, updates); err != nil {
				return nil, fmt.Errorf("step %s -> %s: %w", c.Step, c.To, err)
			}
			if c.To.Terminal() {
				known[c.Step] = knownState{c.To, reasonIn(updates)}
				if err := s.notify(tx, runID, c.Step, string(c.To), reasonIn(updates)); err != nil {
					return nil, err
				}
			}
		}
	}
	return ready, nil
}

// readyStep is a step a transaction made Ready. Its update is written at
// once (written), or held for the completion's next reservation to fold
// into its own (reserveSuccessor) or write (writeReady).
type readyStep struct {
	id, name string
	run      string
	from     engine.StepState
	updates  map[string]any
	written  bool
}

// writeReady writes the updates of ready steps not written yet.
func (s *DB) writeReady(tx *gorm.DB, steps ...readyStep) error {
	for _, r := range steps {
		if r.written {
			continue
		}
		if err := s.updateStep(tx, r.id, r.from, r.updates); err != nil {
			return fmt.Errorf("step %s -> %s: %w", r.name, engine.StepReady, err)
		}
	}
	return nil
}

// markRunRunning sets the run running if it is not, as updateRunState
// would when a step is Ready and another has ended.
func (s *DB) markRunRunning(tx *gorm.DB, runID string) error {
	res := tx.Model(&runRow{}).Where("id = ? AND state <> ?", runID, engine.RunRunning).Update("state", engine.RunRunning)
	if res.Error != nil {
		return fmt.Errorf("run %s -> running: %w", runID, res.Error)
	}
	if res.RowsAffected == 1 {
		return s.notify(tx, runID, "", string(engine.RunRunning), "")
	}
	return nil
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
// The states of dependencies in known are not read again.
func (s *DB) subgraph(tx *gorm.DB, runID string, steps []stepRow, facts *runFacts, known map[string]knownState) (*graph, error) {
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
			if _, err := facts.get(); err != nil {
				return nil, err
			}
			if facts.Cancelled {
				eval := cond.Eval
				cond.Eval = func(status engine.Status) (bool, error) {
					status.Cancelled = true
					return eval(status)
				}
			}
			node.If = cond
		}
		g.nodes = append(g.nodes, node)
		g.states[st.Name] = st.State
		g.ids[st.Name] = st.ID
		g.steps[st.Name] = ps
		for _, d := range st.DependsOn {
			if k, ok := known[d]; ok {
				g.dependency(d, k.state, k.reason)
				continue
			}
			depNames = append(depNames, d)
		}
	}
	if len(depNames) == 0 {
		return g, nil // in a chain, the one dependency has just ended
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
		g.dependency(d.Name, engine.StepState(d.State), d.Reason)
	}
	return g, nil
}

// dependency records the state of a dependency of the graph's steps (a
// step of the graph keeps its own), and whether a skip of it counts as an
// upstream failure.
func (g *graph) dependency(name string, state engine.StepState, reason string) {
	if _, ok := g.states[name]; !ok {
		g.states[name] = state
	}
	if state == engine.StepSkipped {
		g.upstreamFailed[name] = reason != string(engine.ReasonCondition)
	}
}

// updateRunState derives the run state from counts of step states.
func (s *DB) updateRunState(tx *gorm.DB, runID string, now time.Time) error {
	var rows []struct {
		State    string
		Awaiting int
		N        int
	}
	if err := tx.Raw(`SELECT state, CASE WHEN reason = ? THEN 1 ELSE 0 END AS awaiting, COUNT(*) AS n
		FROM steps WHERE run_id = ? GROUP BY state, awaiting`,
		engine.ReasonAwaitingApproval, runID).Scan(&rows).Error; err != nil {
		return fmt.Errorf("count steps of run %s: %w", runID, err)
	}
	counts := make(map[engine.StepState]int, len(rows))
	awaiting := 0
	for _, r := range rows {
		counts[engine.StepState(r.State)] += r.N
		if r.Awaiting == 1 && r.State == string(engine.StepPending) {
			awaiting += r.N
		}
	}
	runState := engine.RunStateWaiting(counts, awaiting)
	if runState == engine.RunFailed {
		// A run cancelled while something failed ends cancelled: that is
		// what a person did last.
		var cancelled []bool
		if err := tx.Raw(`SELECT cancel_requested FROM runs WHERE id = ?`, runID).Scan(&cancelled).Error; err != nil {
			return fmt.Errorf("run %s: %w", runID, err)
		}
		if len(cancelled) == 1 && cancelled[0] {
			runState = engine.RunCancelled
		}
	}
	updates := map[string]any{"state": runState}
	if runState.Terminal() {
		updates["finished_at"] = now
	}
	res := tx.Model(&runRow{}).Where("id = ? AND state <> ?", runID, runState).Updates(updates)
	if res.Error != nil {
		return fmt.Errorf("run %s -> %s: %w", runID, runState, res.Error)
	}
	if res.RowsAffected == 1 {
		return s.notify(tx, runID, "", string(runState), "")
	}
	return nil
}

// reasonIn is the reason an update map sets, or "".
func reasonIn(updates map[string]any) string {
	switch r := updates["reason"].(type) {
	case engine.Reason:
		return string(r)
	case string:
		return r
	}
	return ""
}

// savepoint runs fn inside a savepoint named name of tx, rolled back to if
// fn fails: the rest of the transaction stands.
func savepoint(tx *gorm.DB, name string, fn func() error) error {
	if err := tx.SavePoint(name).Error; err != nil {
		return fmt.Errorf("savepoint %s: %w", name, err)
	}
	if err := fn(); err != nil {
		if rerr := tx.RollbackTo(name).Error; rerr != nil {
			return errors.Join(err, fmt.Errorf("roll back to savepoint %s: %w", name, rerr))
		}
		return err
	}
	return nil
}
