package store

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
)

// dialect is the SQL that differs between SQLite and PostgreSQL; every
// other statement of the store is shared. Migrations live apart, in
// migrations/<name>/.
type dialect struct {
	name string
	// agentHasLabels is a condition on step s: every one of its runs_on
	// labels is among the labels of agent ? (an unknown agent has none).
	agentHasLabels string
	// agentCovers is a condition on agent a: it has every label of the JSON
	// array ?.
	agentCovers string
	// share is a project candidate's running steps per unit of weight.
	share string
	// finishedBefore is a condition on run r: it finished before the time ?.
	finishedBefore string
	// skipLocked ends the reservation's subquery: a Ready step another
	// transaction is reserving is passed over instead of waited for.
	skipLocked string
	// nextServed is the value of projects.served for the project served now.
	nextServed string
	// locks: row locks (SELECT ... FOR NO KEY UPDATE) and advisory locks
	// are taken. SQLite has one writer (transactions begin IMMEDIATE), so
	// nothing changes between a transaction's read and its write there;
	// PostgreSQL runs transactions concurrently (READ COMMITTED), so a read
	// that decides a write locks what it read.
	locks bool
	// dollars: placeholders are $1, $2, … rather than ? (bind).
	dollars bool
	// migrationsTable creates schema_migrations.
	migrationsTable string
	// retryable reports whether a failed transaction may be run again: it
	// lost a deadlock or a serialization conflict. nil: never.
	retryable func(error) bool
}

var sqliteDialect = dialect{
	name: "sqlite",
	agentHasLabels: `NOT EXISTS (SELECT 1 FROM json_each(s.runs_on) need
	WHERE need.value NOT IN (SELECT have.value FROM agents a, json_each(a.labels) have WHERE a.id = ?))`,
	agentCovers: `NOT EXISTS (SELECT 1 FROM json_each(?) need
	WHERE need.value NOT IN (SELECT have.value FROM json_each(a.labels) have))`,
	share: `CAST(running AS REAL) / MAX(weight, 1)`,
	// julianday: the stored times are RFC 3339 text, whose fractions do
	// not sort exactly as text.
	finishedBefore:  `r.finished_at IS NOT NULL AND julianday(r.finished_at) < julianday(?)`,
	skipLocked:      ``,
	nextServed:      `(SELECT COALESCE(MAX(served), 0) + 1 FROM projects)`,
	migrationsTable: `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at DATETIME NOT NULL)`,
}

// JSON columns are TEXT in both dialects; PostgreSQL casts them to jsonb,
// where <@ is "every element is contained in".
var postgresDialect = dialect{
	name:            "postgres",
	agentHasLabels:  `CAST(s.runs_on AS jsonb) <@ COALESCE((SELECT CAST(a.labels AS jsonb) FROM agents a WHERE a.id = ?), '[]'::jsonb)`,
	agentCovers:     `CAST(? AS jsonb) <@ CAST(a.labels AS jsonb)`,
	share:           `CAST(running AS DOUBLE PRECISION) / GREATEST(weight, 1)`,
	finishedBefore:  `r.finished_at IS NOT NULL AND r.finished_at < ?`,
	skipLocked:      ` FOR NO KEY UPDATE SKIP LOCKED`,
	nextServed:      `nextval('projects_served')`,
	locks:           true,
	dollars:         true,
	migrationsTable: `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)`,
	retryable: func(err error) bool {
		var pgErr *pgconn.PgError
		return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001") // deadlock_detected, serialization_failure
	},
}

// Advisory lock keys (PostgreSQL): arbitrary constants unique to Baton.
const (
	// lockMigrations is held by the replica applying migrations.
	lockMigrations int64 = 0x6261746f6e000001
	// lockPool serialises reservations while a global pool limit is set, so
	// replicas never start more steps than --max-running between them.
	lockPool int64 = 0x6261746f6e000002
)
