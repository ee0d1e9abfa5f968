package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"gorm.io/gorm"
)

// CountRows reports how many rows of table match where, for tests that check
// what was physically stored rather than what the store's methods return.
func CountRows(s *DB, table, where string, args ...any) (int64, error) {
	var n int64
	err := s.db.Table(table).Where(where, args...).Count(&n).Error
	return n, err
}

// SetMaxOpenConns bounds the store's connection pool.
func SetMaxOpenConns(s *DB, n int) {
	if sqlDB, err := s.db.DB(); err == nil {
		sqlDB.SetMaxOpenConns(n)
	}
}

// MaxOpenConns is the store's bound on open connections.
func MaxOpenConns(s *DB) int {
	sqlDB, err := s.db.DB()
	if err != nil {
		return -1
	}
	return sqlDB.Stats().MaxOpenConnections
}

// CachedStatements reports how many statements the SQLite writer's and
// readers' caches hold prepared.
func CachedStatements(s *DB) (writer, readers int) {
	count := func(c any) int {
		sc, ok := c.(*stmtCache)
		if !ok {
			return -1
		}
		sc.mu.Lock()
		defer sc.mu.Unlock()
		return len(sc.stmts)
	}
	return count(s.db.ConnPool), count(s.r.ConnPool)
}

// ExecSQL runs a statement on the store's database, for tests that need
// the database itself to misbehave.
func ExecSQL(s *DB, q string) error { return s.db.Exec(q).Error }

// Dialect names the store's SQL dialect: sqlite or postgres.
func Dialect(s *DB) string { return s.d.name }

// TxOps are the transaction helpers the hot path uses, for tests of the
// transaction machinery (the PostgreSQL pipeline).
type TxOps struct {
	s  *DB
	tx *gorm.DB
}

// Write is write: queued in a pipeline, run at once elsewhere.
func (o TxOps) Write(what, q string, args ...any) error { return o.s.write(o.tx, what, q, args...) }

// QueryInt is queryRow for one integer.
func (o TxOps) QueryInt(q string, args ...any) (int64, error) {
	var n int64
	err := o.s.queryRow(o.tx, q, args...).Scan(&n)
	return n, err
}

// ReadIntLater is readLater for one integer, which lands in dst (and
// got is set) when its answer comes.
func (o TxOps) ReadIntLater(what, q string, dst *int64, got *bool, args ...any) error {
	return o.s.readLater(o.tx, what, q, args, func(rows resultRows) error {
		if *got = rows.Next(); *got {
			return rows.Scan(dst)
		}
		return nil
	})
}

// Flush is flush.
func (o TxOps) Flush() error { return o.s.flush(o.tx) }

// GormCount counts a table's rows with gorm, in the transaction.
func (o TxOps) GormCount(table string) (int64, error) {
	var n int64
	err := o.tx.Table(table).Count(&n).Error
	return n, err
}

// Savepoint is savepoint.
func (o TxOps) Savepoint(name string, fn func() error) error { return savepoint(o.tx, name, fn) }

// Transaction runs fn in one of the store's transactions.
func Transaction(ctx context.Context, s *DB, fn func(TxOps) error) error {
	return s.transaction(ctx, func(tx *gorm.DB) error { return fn(TxOps{s, tx}) })
}

// GenericPlans explains, on PostgreSQL, the plan kept for the hot path's
// statements whose plans must not depend on the tables' size when they
// were planned: the dependents of a step, and a successor's reservation.
// It plans them as generic plans, as a long-lived connection does.
func GenericPlans(s *DB) (map[string]string, error) {
	out := map[string]string{}
	for name, q := range map[string]string{
		"dependents":         dependentsSQL(1),
		"dependents of step": dependentsOfStepSQL,
		"successor":          s.successorOneStatement([]string{"ready_at"}),
	} {
		var lines []string
		err := s.db.Transaction(func(tx *gorm.DB) error {
			if err := tx.Exec(`SET LOCAL plan_cache_mode = force_generic_plan`).Error; err != nil {
				return err
			}
			if err := tx.Exec(`PREPARE plan_check AS ` + s.d.bind(q)).Error; err != nil {
				return err
			}
			n := strings.Count(q, "?")
			params := make([]string, n)
			for i := range params {
				params[i] = "NULL"
			}
			if err := tx.Raw(`EXPLAIN EXECUTE plan_check(` + strings.Join(params, ", ") + `)`).Scan(&lines).Error; err != nil {
				return err
			}
			return tx.Exec(`DEALLOCATE plan_check`).Error
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out[name] = strings.Join(lines, "\n")
	}
	return out, nil
}

// HoldCompletions makes a PostgreSQL store's completions wait in their
// queue (one loop) until release lets the loop take one group of all that
// queued; queued says how many wait; sizes has each group's size.
func HoldCompletions(s *DB) (queued func() int, release func(), sizes func() []int) {
	gate := make(chan struct{})
	var mu sync.Mutex
	var got []int
	g := replaceCompletions(s, 1, gate, func(n int) { mu.Lock(); got = append(got, n); mu.Unlock() })
	return func() int { return len(g.queue) },
		func() { gate <- struct{}{} },
		func() []int { mu.Lock(); defer mu.Unlock(); return slices.Clone(got) }
}

// LockRun holds a lock on a run's row, as a transaction that changes the
// run does, until unlock (or the test's end).
func LockRun(t testing.TB, s *DB, runID string) (unlock func()) {
	t.Helper()
	return lockRow(t, s, `SELECT id FROM runs WHERE id = ? FOR NO KEY UPDATE`, runID)
}

// LockProject is LockRun for a project's row, by name.
func LockProject(t testing.TB, s *DB, name string) (unlock func()) {
	t.Helper()
	return lockRow(t, s, `SELECT id FROM projects WHERE name = ? FOR NO KEY UPDATE`, name)
}

func lockRow(t testing.TB, s *DB, q string, args ...any) (unlock func()) {
	t.Helper()
	tx := s.db.Begin()
	var ids []string
	if err := tx.Raw(q, args...).Scan(&ids).Error; err != nil || len(ids) != 1 {
		t.Fatalf("lock %v: %v, %d rows", args, err, len(ids))
	}
	var once sync.Once
	unlock = func() { once.Do(func() { tx.Rollback() }) }
	t.Cleanup(unlock)
	return unlock
}

// WatchCompletionGroups counts a PostgreSQL store's completion groups of
// more than one, and the completions in them.
func WatchCompletionGroups(s *DB) (counts func() (groups, completions int64)) {
	var n, items atomic.Int64
	replaceCompletions(s, groupLoops(MaxOpenConns(s)), nil, func(size int) {
		if size > 1 {
			n.Add(1)
			items.Add(int64(size))
		}
	})
	return func() (int64, int64) { return n.Load(), items.Load() }
}

// replaceCompletions gives the store new completion groups, before use.
func replaceCompletions(s *DB, loops int, gate chan struct{}, onBatch func(int)) *pgGroup {
	s.completions.close()
	g := newPGGroup(s, loops, gate)
	g.onBatch = onBatch
	s.completions = g
	return g
}
