package api

import (
	"context"
	"sync"

	"github.com/baton-ci/baton/server"
)

// stepNames remembers, per step attempt this replica handed out, its run
// and name, so the completion's log line names them without a query. A
// miss (another replica reserved it, or a restart) asks the store. Bounded
// like the maskers: past maxMaskers entries it starts over.
type stepNames struct {
	mu sync.Mutex
	m  map[string]stepName
}

type stepName struct{ runID, name string }

func (c *stepNames) put(stepID string, attempt int, runID, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxMaskers {
		c.m = map[string]stepName{}
	}
	c.m[maskerKey(stepID, attempt)] = stepName{runID, name}
}

// take returns and forgets the attempt's run and name.
func (c *stepNames) take(stepID string, attempt int) (stepName, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.m[maskerKey(stepID, attempt)]
	delete(c.m, maskerKey(stepID, attempt))
	return n, ok
}

// stepNameOf is the run and name of a step a lease holds: remembered from
// the reservation, else read from the store (empty when the lease is stale).
func (s *Server) stepNameOf(ctx context.Context, l server.Lease) stepName {
	if n, ok := s.names.take(l.StepID, l.Attempt); ok {
		return n
	}
	if st, err := s.Dispatch.HeldStep(ctx, l); err == nil && st != nil {
		return stepName{st.RunID, st.Name}
	}
	return stepName{}
}
