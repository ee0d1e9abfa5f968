package api

import "time"

// SetNow replaces the server's clock (tests only).
func (s *Server) SetNow(now func() time.Time) { s.now = now }

// Fast password hashes for the tests (the race detector slows bcrypt down).
func init() { bcryptCost = 4 }
