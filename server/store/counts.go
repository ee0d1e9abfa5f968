package store

import (
	"context"
	"fmt"

	"github.com/baton-ci/baton/server"
)

// CountStates counts runs, steps and agents by state, each with one
// GROUP BY (steps use the index that starts with state).
func (s *DB) CountStates(ctx context.Context) (server.StateCounts, error) {
	db := s.db.WithContext(ctx)
	out := server.StateCounts{}
	for _, t := range []struct {
		table string
		into  *map[string]int
	}{{"runs", &out.Runs}, {"steps", &out.Steps}, {"agents", &out.Agents}} {
		var rows []struct {
			State string
			N     int
		}
		if err := db.Raw(`SELECT state, COUNT(*) AS n FROM ` + t.table + ` GROUP BY state`).Scan(&rows).Error; err != nil {
			return out, fmt.Errorf("count %s by state: %w", t.table, err)
		}
		m := make(map[string]int, len(rows))
		for _, r := range rows {
			m[r.State] = r.N
		}
		*t.into = m
	}
	return out, nil
}
