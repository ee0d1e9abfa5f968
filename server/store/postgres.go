package store

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
)

// OpenPostgres connects to the PostgreSQL database at dsn (a postgres://
// URL or key=value string, as pgx takes it) and applies pending migrations;
// replicas starting together apply them once. Several servers may share the
// database: see the package doc for how they stay consistent.
func OpenPostgres(ctx context.Context, dsn string) (*DB, error) {
	g, err := gorm.Open(postgres.Open(dsn), gormConfig())
	if err != nil {
		return nil, fmt.Errorf("open postgres %s: %w", RedactDSN(dsn), err)
	}
	sqlDB, err := g.DB()
	if err != nil {
		return nil, fmt.Errorf("open postgres %s: %w", RedactDSN(dsn), err)
	}
	sqlDB.SetMaxOpenConns(20)
	sqlDB.SetMaxIdleConns(20)
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
	return s, nil
}

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
