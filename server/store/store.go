// Package store implements the server's store interfaces with gorm over
// SQLite (embedded, pure Go) or PostgreSQL (pgx), with the same code: the
// statements that differ sit in dialect.go. Schema changes are numbered SQL
// files embedded from migrations/<dialect>/ and applied in order at Open;
// AutoMigrate is never used. Exported methods open their transaction;
// unexported helpers take the transaction so they compose.
//
// Concurrency. On SQLite there is one writer at a time. On PostgreSQL,
// several server replicas write at once under READ COMMITTED: a Ready step
// leaves Ready only through one conditional UPDATE (its subquery skips rows
// other reservations hold), and a transaction that reads before it writes
// first locks what it read (FOR NO KEY UPDATE: the lock an UPDATE takes,
// which leaves foreign-key checks alone). Rows are locked in one order, so
// transactions do not wait on each other in a circle: the run, then its
// steps, then their attempts and logs; a reservation locks its project
// (one with a limit) first. The one exception is a run's first reservation, which finds the
// run through the step it took: if that meets a cancel of the same run,
// PostgreSQL detects the deadlock (after deadlock_timeout, 1 s by default)
// and the losing transaction is run again.
package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"

	"github.com/baton-ci/baton/server"
)

//go:embed migrations
var migrations embed.FS

// DB is the server's database.
type DB struct {
	db *gorm.DB
	// r serves reads that need no transaction: on SQLite, connections of
	// their own (WAL readers run beside the one writer), so agents' lookups
	// and the API's pages do not queue behind dispatch; on PostgreSQL, db.
	r *gorm.DB
	d dialect
	// now is the clock; tests may replace it.
	now func() time.Time
	// MaxRunning is the global pool limit: no step is reserved while this
	// many run fleet-wide. 0: no limit.
	MaxRunning int
	// notifies caches which runs' projects want notifications.
	notifies notifyCache
	// agents caches agents for their own calls (RecentAgent).
	agents agentCache
	// stop ends what runs beside the connections (SQLite checkpoints).
	stop func()
	// group, on SQLite, runs concurrent write transactions as one.
	group *groupCommit
	// completions, on PostgreSQL, runs concurrent completions in groups.
	completions *pgGroup
}

var (
	_ server.RunStore   = (*DB)(nil)
	_ server.Dispatcher = (*DB)(nil)
	_ server.AgentStore = (*DB)(nil)
)

func newDB(g *gorm.DB, d dialect) *DB {
	return &DB{db: g, r: g, d: d, now: now}
}

// now is the store's clock: UTC, in microseconds, which both databases
// store exactly.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func gormConfig() *gorm.Config {
	return &gorm.Config{
		Logger:                 logger.Discard,
		SkipDefaultTransaction: true,
		NowFunc:                now,
	}
}

// maxRetries bounds how often a transaction that lost a deadlock is run again.
const maxRetries = 4

// transaction runs fn in a transaction. One that lost a deadlock or a
// serialization conflict (PostgreSQL) is run again, so fn must be safe to
// repeat: it sets its results rather than adding to them.
func (s *DB) transaction(ctx context.Context, fn func(tx *gorm.DB) error) error {
	if s.group != nil {
		return s.group.do(ctx, fn)
	}
	for try := 1; ; try++ {
		var err error
		if s.d.dollars {
			err = s.pipelined(ctx, fn)
		} else {
			err = s.db.WithContext(ctx).Transaction(fn)
		}
		if err == nil || s.d.retryable == nil || !s.d.retryable(err) || try == maxRetries {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(try) * time.Duration(5+rand.IntN(20)) * time.Millisecond):
		}
	}
}

// completion runs a completion's transaction: on PostgreSQL in a group
// with the others that arrive with it (pgGroup), else as transaction does.
func (s *DB) completion(ctx context.Context, fn func(tx *gorm.DB) error) error {
	if s.completions != nil {
		return s.completions.do(ctx, fn)
	}
	return s.transaction(ctx, fn)
}

// locking makes a query lock the rows it reads until the transaction ends
// (FOR UPDATE), where the dialect needs it.
func (s *DB) locking(tx *gorm.DB) *gorm.DB {
	if !s.d.locks {
		return tx
	}
	return tx.Clauses(clause.Locking{Strength: "NO KEY UPDATE"})
}

// lockRun locks a run's row: transactions that change several steps of a
// run take it first.
func (s *DB) lockRun(tx *gorm.DB, runID string) error {
	if !s.d.locks {
		return nil
	}
	if err := tx.Exec(`SELECT id FROM runs WHERE id = ? FOR NO KEY UPDATE`, runID).Error; err != nil {
		return fmt.Errorf("lock run %s: %w", runID, err)
	}
	return nil
}

// lockStep locks a step's row: a report, the server's expiry, a renewal and
// a log upload of the same step take turns.
func (s *DB) lockStep(tx *gorm.DB, stepID string) error {
	if !s.d.locks {
		return nil
	}
	if err := tx.Exec(`SELECT id FROM steps WHERE id = ? FOR NO KEY UPDATE`, stepID).Error; err != nil {
		return fmt.Errorf("lock step %s: %w", stepID, err)
	}
	return nil
}

// lockStepAndRun locks a step's run, then the step, in the order every
// transaction takes them, with one statement: the join's rows are locked
// in the order the tables are named. (An unknown step locks nothing: the
// caller's lookup says so.)
func (s *DB) lockStepAndRun(tx *gorm.DB, stepID string) error {
	if !s.d.locks {
		return nil
	}
	if _, err := s.exec(tx, `SELECT r.id FROM runs r JOIN steps s ON s.run_id = r.id WHERE s.id = ? FOR NO KEY UPDATE`, stepID); err != nil {
		return fmt.Errorf("lock step %s and its run: %w", stepID, err)
	}
	return nil
}

// Ping checks that the database answers a query.
func (s *DB) Ping(ctx context.Context) error {
	var one int
	return s.db.WithContext(ctx).Raw("SELECT 1").Scan(&one).Error
}

// Close closes the underlying connections.
func (s *DB) Close() error {
	if s.group != nil {
		s.group.close()
	}
	if s.completions != nil {
		s.completions.close()
	}
	if s.stop != nil {
		s.stop()
	}
	if s.r != s.db {
		if r, err := s.r.DB(); err == nil {
			r.Close()
		}
	}
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// migrate applies the embedded migrations that have not run yet, each in its
// own transaction, recording them in schema_migrations.
func (s *DB) migrate(ctx context.Context) error {
	if !s.d.locks {
		return s.migrateOn(s.db.WithContext(ctx))
	}
	// Replicas starting together: one applies the migrations while the
	// others wait on a session lock, then find them applied.
	return s.db.WithContext(ctx).Connection(func(conn *gorm.DB) error {
		if err := conn.Exec(`SELECT pg_advisory_lock(?)`, lockMigrations).Error; err != nil {
			return fmt.Errorf("lock migrations: %w", err)
		}
		defer conn.Exec(`SELECT pg_advisory_unlock(?)`, lockMigrations)
		return s.migrateOn(conn)
	})
}

func (s *DB) migrateOn(db *gorm.DB) error {
	if err := db.Exec(s.d.migrationsTable).Error; err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	var applied []int
	if err := db.Raw(`SELECT version FROM schema_migrations`).Scan(&applied).Error; err != nil {
		return fmt.Errorf("read schema_migrations: %w", err)
	}
	done := make(map[int]bool, len(applied))
	for _, v := range applied {
		done[v] = true
	}
	dir := path.Join("migrations", s.d.name)
	entries, err := fs.ReadDir(migrations, dir)
	if err != nil {
		return fmt.Errorf("read migrations: %w", err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	for _, e := range entries {
		name := e.Name()
		num, _, ok := strings.Cut(name, "_")
		version, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(name, ".sql") {
			return fmt.Errorf("migration %s: name must be NNNN_description.sql", name)
		}
		if done[version] {
			continue
		}
		sqlText, err := migrations.ReadFile(path.Join(dir, name))
		if err != nil {
			return err
		}
		err = db.Transaction(func(tx *gorm.DB) error {
			for _, stmt := range splitStatements(string(sqlText)) {
				if err := tx.Exec(stmt).Error; err != nil {
					return fmt.Errorf("%w\n%s", err, stmt)
				}
			}
			return tx.Exec(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, version, s.now()).Error
		})
		if err != nil {
			return fmt.Errorf("migration %s: %w", name, err)
		}
	}
	return nil
}

// splitStatements splits a migration file on semicolons that end a line.
// Migrations must not put a semicolon at the end of a line inside a string.
func splitStatements(sqlText string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(sqlText, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(strings.TrimSpace(line), ";") {
			if stmt := strings.TrimSpace(cur.String()); stmt != ";" {
				out = append(out, stmt)
			}
			cur.Reset()
		}
	}
	if stmt := strings.TrimSpace(cur.String()); stmt != "" {
		out = append(out, stmt)
	}
	return out
}

// notFound maps gorm's not-found error to the domain's.
func notFound(err error, format string, args ...any) error {
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return server.Errorf(server.ENOTFOUND, format, args...)
	}
	return err
}
