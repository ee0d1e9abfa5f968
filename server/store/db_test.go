package store_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", to create and drop test schemas

	"github.com/baton-ci/baton/server/store"
)

// The store suite runs every test on SQLite and on PostgreSQL. PostgreSQL
// needs BATON_TEST_POSTGRES, a DSN (.ci/postgres sets one up and prints
// it); each test gets its own schema there. Without it the PostgreSQL
// variants skip, except under CI=true, where they fail.
const postgresEnv = "BATON_TEST_POSTGRES"

func TestMain(m *testing.M) {
	if os.Getenv(postgresEnv) == "" {
		if os.Getenv("CI") == "true" {
			fmt.Fprintf(os.Stderr, "store: %s is not set and CI=true: the PostgreSQL variants of the store tests will FAIL (run .ci/postgres for a DSN)\n", postgresEnv)
		} else {
			fmt.Fprintf(os.Stderr, "store: SKIPPING the PostgreSQL variants of the store tests: set %s to a DSN (.ci/postgres prints one)\n", postgresEnv)
		}
	}
	os.Exit(m.Run())
}

// testDB is an empty database of one dialect; Open may be called more than
// once and opens the same database each time (a restart, or a second
// server replica).
type testDB struct {
	dialect string
	open    func(t testing.TB, conns int) *store.DB
}

// testConns bounds a PostgreSQL test store's connections: tests run in
// parallel against one server, and must keep within its max_connections.
const testConns = 6

// Open opens a store on the database and closes it when the test ends.
func (d testDB) Open(t testing.TB) *store.DB {
	t.Helper()
	return d.open(t, testConns)
}

// OpenWith is Open with at most conns PostgreSQL connections (0: the
// server's default).
func (d testDB) OpenWith(t testing.TB, conns int) *store.DB {
	t.Helper()
	return d.open(t, conns)
}

// eachDialect runs test on a fresh store of each dialect, as parallel
// subtests named sqlite and postgres.
func eachDialect(t *testing.T, test func(t *testing.T, s *store.DB)) {
	t.Helper()
	eachDB(t, func(t *testing.T, db testDB) { test(t, db.Open(t)) })
}

// eachDB runs test on an empty database of each dialect.
func eachDB(t *testing.T, test func(t *testing.T, db testDB)) {
	t.Helper()
	t.Parallel()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		test(t, sqliteDB(t))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		test(t, postgresDB(t))
	})
}

func sqliteDB(t testing.TB) testDB {
	path := filepath.Join(t.TempDir(), "data", "baton.db")
	return testDB{dialect: "sqlite", open: func(t testing.TB, _ int) *store.DB {
		t.Helper()
		s, err := store.OpenSQLite(t.Context(), path)
		if err != nil {
			t.Fatalf("OpenSQLite(%s): %v", path, err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}}
}

// postgresDB creates a schema of its own for the test in the database of
// BATON_TEST_POSTGRES, and drops it when the test ends.
func postgresDB(t testing.TB) testDB {
	t.Helper()
	dsn := os.Getenv(postgresEnv)
	if dsn == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set: CI=true needs the PostgreSQL variant of every store test (run .ci/postgres for a DSN)", postgresEnv)
		}
		t.Skipf("SKIPPING: %s is not set", postgresEnv)
	}
	admin := adminDB(t, dsn)
	schema := "t_" + randomHex(8)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema %s: %v", schema, err)
	}
	// Registered before any store's Close, so it runs after them.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	scoped, err := withSearchPath(dsn, schema)
	if err != nil {
		t.Fatal(err)
	}
	return testDB{dialect: "postgres", open: func(t testing.TB, conns int) *store.DB {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		s, err := store.OpenPostgres(ctx, scoped, conns)
		if err != nil {
			t.Fatalf("OpenPostgres(%s): %v", store.RedactDSN(scoped), err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}}
}

var (
	adminOnce sync.Once
	admin     *sql.DB
	adminErr  error
)

// adminDB is one connection pool for creating and dropping test schemas.
func adminDB(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	adminOnce.Do(func() {
		admin, adminErr = sql.Open("pgx", dsn)
		if adminErr == nil {
			admin.SetMaxOpenConns(2)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			adminErr = admin.PingContext(ctx)
		}
	})
	if adminErr != nil {
		t.Fatalf("%s: %v", postgresEnv, adminErr)
	}
	return admin
}

// withSearchPath returns dsn with the session's search_path set to schema.
func withSearchPath(dsn, schema string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("%s: %w", postgresEnv, err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	return dsn + " search_path=" + schema, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
