package store

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestQueuePlansUsePartialIndexes checks that SQLite plans the queue's
// statements over the partial indexes of Ready and Running steps
// (migrations/sqlite/0019): a statement that compared the state with a
// bound value instead of a literal would scan every step ever run.
func TestQueuePlansUsePartialIndexes(t *testing.T) {
	s, err := OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "baton.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, c := range []struct {
		name, query, index string
	}{
		{"pick a project", s.d.pickProject(), "steps_ready"},
		{"pick a project (running)", s.d.pickProject(), "steps_running"},
		{"reserve", s.d.reserveInProject(), "steps_ready"},
		{"reserve a successor", s.d.reserveSuccessorStep([]string{"ready_at"}, "id"), "steps_ready"},
		{"any ready step", `SELECT 1 FROM steps WHERE ` + isReady + ` AND not_before <= ? LIMIT 1`, "steps_ready"},
		{"pool limit", `SELECT COUNT(*) FROM steps WHERE ` + isRunning, "steps_"},
		{"expired leases", `SELECT * FROM steps WHERE ` + isRunning + ` AND (lease_expires < ? OR (deadline > 0 AND deadline < ?))`, "steps_"},
		{"an agent's steps", `SELECT * FROM steps WHERE agent_id = ? AND ` + isRunning, "steps_agent_running"},
	} {
		args := make([]any, strings.Count(c.query, "?"))
		for i := range args {
			args[i] = i
		}
		var plan []struct{ Detail string }
		if err := s.db.Raw("EXPLAIN QUERY PLAN "+c.query, args...).Scan(&plan).Error; err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var details []string
		for _, p := range plan {
			details = append(details, p.Detail)
			if strings.HasPrefix(p.Detail, "SCAN ") && strings.Contains(p.Detail, "steps") && !strings.Contains(p.Detail, "INDEX steps_") {
				t.Errorf("%s scans the steps table: %q", c.name, p.Detail)
			}
		}
		if !strings.Contains(strings.Join(details, "\n"), "INDEX "+c.index) {
			t.Errorf("%s does not use index %s*:\n%s", c.name, c.index, strings.Join(details, "\n"))
		}
	}
}
