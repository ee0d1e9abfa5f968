package store

import (
	"context"
	"fmt"
	"net/url"
	"runtime"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
)

// OpenPostgres connects to the PostgreSQL database at dsn (a postgres://
// URL or key=value string, as pgx takes it) and applies pending migrations;
// replicas starting together apply them once. Several servers may share the
// database: see the package doc for how they stay consistent. It opens at
// most maxConns connections (DefaultPostgresConns if maxConns < 1).
func OpenPostgres(ctx context.Context, dsn string, maxConns int) (*DB, error) {
	g, err := gorm.Open(postgres.Open(dsn), gormConfig())
	if err != nil {
		return nil, fmt.Errorf("open postgres %s: %w", RedactDSN(dsn), err)
	}
	sqlDB, err := g.DB()
	if err != nil {
		return nil, fmt.Errorf("open postgres %s: %w", RedactDSN(dsn), err)
	}
	n := maxConns
	if n < 1 {
		n = DefaultPostgresConns()
	}
	sqlDB.SetMaxOpenConns(n)
	sqlDB.SetMaxIdleConns(n)
	sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	s := newDB(g, postgresDialect)
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open postgres %s: %w", RedactDSN(dsn), err)
	}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("migrate postgres %s: %w", RedactDSN(dsn), err)
	}
	s.completions = newPGGroup(s, groupLoops(n), nil)
	return s, nil
}

// DefaultPostgresConns is how many PostgreSQL connections a server opens
// at most unless told otherwise (OpenPostgres): three per CPU it may
// use, at least 4. A completion holds its connection for two round trips
// and the server's work between them, so a few per CPU keep the database
// busy; more only queue in PostgreSQL, where 20 backends contending for
// two cores did a fifth less work than 6 (docs/performance.md).
func DefaultPostgresConns() int { return max(4, 3*runtime.GOMAXPROCS(0)) }

// groupLoops is how many groups of completions run at once on n
// connections: half of them, leaving the rest to everything else.
func groupLoops(n int) int { return max(1, n/2) }

// RedactDSN returns a postgres:// URL with its password replaced, for logs
// and errors; any other form is shown only as "(dsn)".
func RedactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "(dsn)"
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}
