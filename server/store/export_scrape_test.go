package store

// Exec runs a statement on the store's database, for benchmarks that shape
// data faster than the store's methods would.
func Exec(s *DB, sql string, args ...any) error { return s.db.Exec(sql, args...).Error }
