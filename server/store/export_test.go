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
