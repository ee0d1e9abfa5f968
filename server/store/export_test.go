package store

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
