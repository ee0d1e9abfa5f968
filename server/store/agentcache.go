package store

import (
	"context"
	"sync"
	"time"

	"github.com/baton-ci/baton/server"
)

// AgentCacheFor is how old an agent's record RecentAgent returns may be:
// changes made through another replica are seen within it; this replica's
// own at once.
const AgentCacheFor = 2 * time.Second

// agentCache holds agents as recently read, for the checks every agent
// call makes (requireAgent): reading the agent was a query per call, on
// PostgreSQL a round trip. Nothing that must be exact depends on it: a
// reservation checks in its own statement that the agent is enabled.
type agentCache struct {
	mu  sync.Mutex
	m   map[string]cachedAgent
	gen uint64 // counts forgets: a read that began before one is not kept
}

type cachedAgent struct {
	a     server.Agent
	until time.Time
}

// maxCachedAgents bounds the cache; past it, it starts again empty.
const maxCachedAgents = 50_000

// RecentAgent returns an agent as read at most AgentCacheFor ago, or
// ENOTFOUND.
func (s *DB) RecentAgent(ctx context.Context, id string) (*server.Agent, error) {
	now := time.Now()
	c := &s.agents
	c.mu.Lock()
	e, ok := c.m[id]
	gen := c.gen
	c.mu.Unlock()
	if ok && now.Before(e.until) {
		a := e.a
		return &a, nil
	}
	a, err := s.FindAgent(ctx, id)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCachedAgents {
		c.m = map[string]cachedAgent{}
	}
	if c.gen == gen {
		c.m[id] = cachedAgent{a: *a, until: now.Add(AgentCacheFor)}
	}
	c.mu.Unlock()
	return a, nil
}

// forget drops agents from the cache after this replica changed them;
// none: all of them.
func (c *agentCache) forget(ids ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if len(ids) == 0 {
		c.m = nil
		return
	}
	for _, id := range ids {
		delete(c.m, id)
	}
}

// seen records a new last_seen in the cached agent, if there is one.
func (c *agentCache) seen(id string, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[id]; ok {
		e.a.LastSeen = at
		c.m[id] = e
	}
}
