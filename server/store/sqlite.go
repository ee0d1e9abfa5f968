package store

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

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
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(wal)")
	q.Add("_pragma", "foreign_keys(on)")
	q.Add("_pragma", "synchronous(normal)")
	q.Set("_txlock", "immediate")
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
	g, err := gorm.Open(gormlite.Open(dsn), gormConfig())
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
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
	return s, nil
}
