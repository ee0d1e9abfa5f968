package store

import (
	"database/sql"
	"strconv"
	"strings"
	"sync"

	"gorm.io/gorm"
)

// The statements of a dispatched step's hot path (its completion and the
// next reservation) run on the transaction's connection directly. gorm
// builds each statement from clauses and scans rows by reflection, which
// on SQLite cost the one writer as much as executing the statements did
// (docs/performance.md). Everything else goes through gorm.

// exec runs statement q (with ? placeholders) in tx.
func (s *DB) exec(tx *gorm.DB, q string, args ...any) (sql.Result, error) {
	return tx.Statement.ConnPool.ExecContext(tx.Statement.Context, s.d.bind(q), args...)
}

// queryRow runs query q (with ? placeholders) in tx for one row.
func (s *DB) queryRow(tx *gorm.DB, q string, args ...any) *sql.Row {
	return tx.Statement.ConnPool.QueryRowContext(tx.Statement.Context, s.d.bind(q), args...)
}

// query runs query q (with ? placeholders) in tx.
func (s *DB) query(tx *gorm.DB, q string, args ...any) (*sql.Rows, error) {
	return tx.Statement.ConnPool.QueryContext(tx.Statement.Context, s.d.bind(q), args...)
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
