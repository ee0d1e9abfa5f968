package store

import (
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"gorm.io/gorm"

	"github.com/baton-ci/baton/shared/engine"
)

// The statements of a dispatched step's hot path (its completion and the
// next reservation) run on the transaction's connection directly. gorm
// builds each statement from clauses and scans rows by reflection, which
// on SQLite cost the one writer as much as executing the statements did
// (docs/performance.md). Everything else goes through gorm.

// exec runs statement q (with ? placeholders) in tx.
func (s *DB) exec(tx *gorm.DB, q string, args ...any) (sql.Result, error) {
	if p := pipelineOf(tx); p != nil {
		return p.exec(tx.Statement.Context, s.d.bind(q), args)
	}
	return tx.Statement.ConnPool.ExecContext(tx.Statement.Context, s.d.bind(q), args...)
}

// write runs statement q (with ? placeholders) in tx, or, in a pipeline,
// queues it to go with the next statement: its error may then come from
// that statement, or from the commit, as the transaction's. what names
// what it does, for that error.
func (s *DB) write(tx *gorm.DB, what, q string, args ...any) error {
	if p := pipelineOf(tx); p != nil {
		p.write(what, s.d.bind(q), args)
		return nil
	}
	if _, err := tx.Statement.ConnPool.ExecContext(tx.Statement.Context, s.d.bind(q), args...); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// readLater runs query q (with ? placeholders) in tx and gives its rows
// to read, or, in a pipeline, queues it to go with the next statement
// (flush sends it at once), as write does: read is called when its rows
// come, and its error is the transaction's.
func (s *DB) readLater(tx *gorm.DB, what, q string, args []any, read func(resultRows) error) error {
	if p := pipelineOf(tx); p != nil {
		p.readLater(what, s.d.bind(q), args, read)
		return nil
	}
	rows, err := tx.Statement.ConnPool.QueryContext(tx.Statement.Context, s.d.bind(q), args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	if err := read(rows); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return rows.Close()
}

// flush sends what waits in tx's pipeline, if it runs in one.
func (s *DB) flush(tx *gorm.DB) error {
	if p := pipelineOf(tx); p != nil {
		return p.flush(tx.Statement.Context)
	}
	return nil
}

// resultRows are a query's rows: *sql.Rows, or a pipelined query's.
type resultRows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close() error
}

// scanner reads one row.
type scanner interface {
	Scan(dest ...any) error
}

// queryRow runs query q (with ? placeholders) in tx for one row; Scan
// says sql.ErrNoRows when there is none.
func (s *DB) queryRow(tx *gorm.DB, q string, args ...any) scanner {
	if p := pipelineOf(tx); p != nil {
		rows, err := p.query(tx.Statement.Context, s.d.bind(q), args)
		return firstRow{rows, err}
	}
	return tx.Statement.ConnPool.QueryRowContext(tx.Statement.Context, s.d.bind(q), args...)
}

// query runs query q (with ? placeholders) in tx.
func (s *DB) query(tx *gorm.DB, q string, args ...any) (resultRows, error) {
	if p := pipelineOf(tx); p != nil {
		return p.query(tx.Statement.Context, s.d.bind(q), args)
	}
	return tx.Statement.ConnPool.QueryContext(tx.Statement.Context, s.d.bind(q), args...)
}

// firstRow is the first of some rows, as *sql.Row is.
type firstRow struct {
	rows resultRows
	err  error
}

func (r firstRow) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Close(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	return r.rows.Close()
}

// dollarParams caches PostgreSQL's form of each statement.
var dollarParams sync.Map // string -> string

// bind writes q's ? placeholders as the dialect wants them: $1, $2, … on
// PostgreSQL. The statements never hold a ? inside a literal.
func (d *dialect) bind(q string) string {
	if !d.dollars {
		return q
	}
	if b, ok := dollarParams.Load(q); ok {
		return b.(string)
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	dollarParams.Store(q, b.String())
	return b.String()
}

// updateStepSQL caches the UPDATE for each set of columns updateStep sets.
var updateStepSQL sync.Map // string (sorted columns) -> string

// updateStep sets the columns of step id that updates names (column ->
// value) if the step is still in state from.
func (s *DB) updateStep(tx *gorm.DB, id string, from engine.StepState, updates map[string]any) error {
	return s.updateStepWith(tx, "", nil, id, from, updates)
}

// updateStepWith is updateStep with a WITH clause before the UPDATE (a
// data-modifying CTE on PostgreSQL) and its arguments.
func (s *DB) updateStepWith(tx *gorm.DB, with string, withArgs []any, id string, from engine.StepState, updates map[string]any) error {
	cols := make([]string, 0, len(updates))
	for c := range updates {
		cols = append(cols, c)
	}
	slices.Sort(cols)
	key := with + "|" + strings.Join(cols, ",")
	q, ok := updateStepSQL.Load(key)
	if !ok {
		var b strings.Builder
		b.WriteString(with + "UPDATE steps SET ")
		for i, c := range cols {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(c + " = ?")
		}
		b.WriteString(" WHERE id = ? AND state = ?")
		q, _ = updateStepSQL.LoadOrStore(key, b.String())
	}
	args := make([]any, 0, len(withArgs)+len(cols)+2)
	args = append(args, withArgs...)
	for _, c := range cols {
		args = append(args, updates[c])
	}
	return s.write(tx, "step "+id+" -> "+fmt.Sprint(updates["state"]), q.(string), append(args, id, from)...)
}

// stepColumnNames are the steps table's columns in stepRow's field order
// (scanStep).
var stepColumnNames = []string{"id", "run_id", "name", "idx", "image", "command", "args", "env", "depends_on", "timeout_ms",
	"retry", "if_cond", "assert", "runs_on", "priority", "approval", "secrets", "environment", "memory", "nano_cpus",
	"state", "exit_code", "reason", "error", "outputs", "agent_id", "attempt", "not_before", "ready_at",
	"started_at", "finished_at", "lease_id", "lease_expires", "deadline", "cancel_requested", "project_id"}

// stepColumns lists stepColumnNames qualified by alias, for a SELECT that
// scanStep reads.
func stepColumns(alias string) string {
	return alias + "." + strings.Join(stepColumnNames, ", "+alias+".")
}

// scanStep reads a row of stepColumns into r, and any columns after them
// into extra.
func scanStep(rows scanner, r *stepRow, extra ...any) error {
	return rows.Scan(append([]any{&r.ID, &r.RunID, &r.Name, &r.Idx, &r.Image, &r.Command, &r.Args, &r.Env, &r.DependsOn, &r.TimeoutMs,
		&r.Retry, &r.IfCond, &r.Assert, &r.RunsOn, &r.Priority, &r.Approval, &r.Secrets, &r.Environment, &r.Memory, &r.NanoCpus,
		&r.State, &r.ExitCode, &r.Reason, &r.Error, &r.Outputs, &r.AgentID, &r.Attempt, &r.NotBefore, &r.ReadyAt,
		&r.StartedAt, &r.FinishedAt, &r.LeaseID, &r.LeaseExpires, &r.Deadline, &r.CancelRequested, &r.ProjectID}, extra...)...)
}
