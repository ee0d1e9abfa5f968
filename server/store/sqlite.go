package store

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ncruces/go-sqlite3"
	"github.com/ncruces/go-sqlite3/driver"
	"github.com/ncruces/go-sqlite3/gormlite"
	"gorm.io/gorm"
)

// OpenSQLite opens (creating if needed) the SQLite database at path and
// applies pending migrations. Every connection runs in WAL mode with a busy
// timeout and foreign keys on; transactions begin IMMEDIATE so concurrent
// writers queue on the lock instead of failing with "database is locked".
func OpenSQLite(ctx context.Context, path string) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create database directory: %w", err)
	}
	g, err := openSQLiteGorm(path, false)
	if err != nil {
		return nil, err
	}
	// One connection: SQLite has a single writer, and its busy handler is a
	// sleep-and-retry loop in which the goroutine that just committed keeps
	// winning the lock, so under load a waiter could starve past busy_timeout
	// ("database is locked"). database/sql hands the connection over to a
	// waiting caller instead, and honours each caller's context.
	sqlDB, err := g.DB()
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	sqlDB.SetMaxOpenConns(1)
	s := newDB(g, sqliteDialect)
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("migrate %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		s.Close()
		return nil, err
	}
	newStmtCache(sqlDB).use(g) // after the migrations: they run once
	s.group = newGroupCommit(g)
	if s.r, err = openSQLiteReader(path); err != nil {
		s.Close()
		return nil, err
	}
	if s.stop, err = checkpointInBackground(path, time.Second); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// checkpointInBackground copies the WAL back into the database file every
// interval from a connection of its own (PASSIVE: it never blocks the
// writer or the readers). The writer's connections do not checkpoint
// (wal_autocheckpoint 0): there it ran inside whichever transaction
// crossed 1,000 WAL pages, fsync included, with every other write
// waiting. It returns the function that stops it and runs a last one.
func checkpointInBackground(path string, interval time.Duration) (func(), error) {
	db, err := sql.Open("sqlite3", sqliteDSN(path, false))
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s for checkpoints: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			// An error (the database closing under it) is retried next time.
			db.Exec(`PRAGMA wal_checkpoint(PASSIVE)`)
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			<-stopped
			db.Exec(`PRAGMA wal_checkpoint(PASSIVE)`)
			db.Close()
		})
	}, nil
}

// sqliteReaders is how many read-only connections serve reads beside the
// writer.
const sqliteReaders = 2

// openSQLiteReader opens the read-only connections (query_only: a write
// through them fails rather than contending with the writer).
func openSQLiteReader(path string) (*gorm.DB, error) {
	r, err := openSQLiteGorm(path, true)
	if err != nil {
		return nil, err
	}
	sqlDB, err := r.DB()
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s for reading: %w", path, err)
	}
	sqlDB.SetMaxOpenConns(sqliteReaders)
	newStmtCache(sqlDB).use(r)
	return r, nil
}

// openSQLiteGorm opens the database at path through gorm (read-only
// connections if readOnly), with the query planner's stability guarantee
// on: SQLite then plans a statement once, never from the values bound to
// it. Without it, a statement comparing a step's state with a bound value
// was prepared again on every run, in case the value matched a partial
// index (migrations/sqlite/0019): that cost more than the index saved.
// Statements name the states the partial indexes cover as literals
// (stateIs).
func openSQLiteGorm(path string, readOnly bool) (*gorm.DB, error) {
	sqlDB, err := driver.Open(sqliteDSN(path, readOnly), func(c *sqlite3.Conn) error {
		_, err := c.Config(sqlite3.DBCONFIG_ENABLE_QPSG, true)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	g, err := gorm.Open(gormlite.OpenDB(sqlDB), gormConfig())
	if err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	return g, nil
}

// sqliteDSN is the connection string of the database at path: WAL, a busy
// timeout, foreign keys, transactions that begin IMMEDIATE, and for
// readOnly connections query_only.
func sqliteDSN(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(wal)")
	q.Add("_pragma", "foreign_keys(on)")
	q.Add("_pragma", "synchronous(normal)")
	q.Add("_pragma", "temp_store(memory)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Add("_pragma", "wal_autocheckpoint(0)") // checkpointInBackground
		q.Set("_txlock", "immediate")
	}
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}
