// Package store implements the server's store interfaces with gorm over
// SQLite (embedded, pure Go). Schema changes are numbered SQL files embedded
// from migrations/<dialect>/ and applied in order at Open; AutoMigrate is never
// used. Exported methods open their transaction; unexported helpers take the
// transaction so they compose.
package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/baton-ci/baton/server"
)

//go:embed migrations
var migrations embed.FS

// DB is the server's database.
type DB struct {
	db      *gorm.DB
	dialect string
	// now is the clock; tests may replace it.
	now func() time.Time
}

var (
	_ server.RunStore   = (*DB)(nil)
	_ server.Dispatcher = (*DB)(nil)
	_ server.AgentStore = (*DB)(nil)
)

func newDB(g *gorm.DB, dialect string) *DB {
	return &DB{db: g, dialect: dialect, now: func() time.Time { return time.Now().UTC() }}
}

func gormConfig() *gorm.Config {
	return &gorm.Config{
		Logger:                 logger.Discard,
		SkipDefaultTransaction: true,
		NowFunc:                func() time.Time { return time.Now().UTC() },
	}
}

// Ping checks that the database answers a query.
func (s *DB) Ping(ctx context.Context) error {
	var one int
	return s.db.WithContext(ctx).Raw("SELECT 1").Scan(&one).Error
}

// Close closes the underlying connections.
func (s *DB) Close() error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// migrate applies the embedded migrations that have not run yet, each in its
// own transaction, recording them in schema_migrations.
func (s *DB) migrate(ctx context.Context) error {
	db := s.db.WithContext(ctx)
	if err := db.Exec(`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at DATETIME NOT NULL)`).Error; err != nil {
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
	dir := path.Join("migrations", s.dialect)
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
