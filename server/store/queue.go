package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/baton-ci/baton/server"
)

var _ server.QueueStore = (*DB)(nil)

// Queue groups the ready steps by the labels they need, with the oldest's
// age and how many enabled agents could take them.
func (s *DB) Queue(ctx context.Context) ([]server.QueueLine, error) {
	db := s.r.WithContext(ctx)
	var rows []struct {
		RunsOn string
		N      int
		Oldest int64
	}
	if err := db.Raw(`SELECT runs_on, COUNT(*) AS n, MIN(ready_at) AS oldest FROM steps WHERE ` + isReady + ` GROUP BY runs_on`).
		Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	merged := map[string]*server.QueueLine{}
	for _, r := range rows {
		var labels []string
		json.Unmarshal([]byte(r.RunsOn), &labels) // written by this package
		sort.Strings(labels)
		key, _ := json.Marshal(labels)
		line, ok := merged[string(key)]
		if !ok {
			line = &server.QueueLine{Labels: labels}
			if err := db.Raw(`SELECT COUNT(*) FROM agents a WHERE a.state = ? AND `+s.d.agentCovers,
				server.AgentEnabled, string(key)).Scan(&line.Agents).Error; err != nil {
				return nil, fmt.Errorf("agents for %v: %w", labels, err)
			}
			merged[string(key)] = line
		}
		line.Ready += r.N
		if r.Oldest > 0 && (line.OldestReady.IsZero() || time.UnixMilli(r.Oldest).Before(line.OldestReady)) {
			line.OldestReady = time.UnixMilli(r.Oldest).UTC()
		}
	}
	out := make([]server.QueueLine, 0, len(merged))
	for _, l := range merged {
		out = append(out, *l)
	}
	sort.Slice(out, func(i, j int) bool { return fmt.Sprint(out[i].Labels) < fmt.Sprint(out[j].Labels) })
	return out, nil
}
