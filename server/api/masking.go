package api

import (
	"context"
	"fmt"
	"sync"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/shared/mask"
)

// maxMaskers bounds the cache of running steps' maskers; past it the cache
// starts over (entries are rebuilt from the database on demand).
const maxMaskers = 10_000

// maskers caches, per step attempt, the masker for the secrets it was
// given, for the server's second masking pass over uploaded logs. A
// reservation fills it; a miss (another replica reserved the step, or a
// restart) loads the step's secrets again.
type maskers struct {
	mu sync.Mutex
	m  map[string]*mask.Masker
}

func maskerKey(stepID string, attempt int) string { return fmt.Sprintf("%s/%d", stepID, attempt) }

func (c *maskers) put(stepID string, attempt int, secrets ...map[string]string) {
	var values []string
	for _, m := range secrets {
		for _, v := range m {
			values = append(values, v)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxMaskers {
		c.m = map[string]*mask.Masker{}
	}
	c.m[maskerKey(stepID, attempt)] = mask.New(values)
}

func (c *maskers) get(stepID string, attempt int) (*mask.Masker, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.m[maskerKey(stepID, attempt)]
	return m, ok
}

func (c *maskers) drop(stepID string, attempt int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, maskerKey(stepID, attempt))
}

// redactorFor returns the masker for a step held under lease, or nil when
// the step has no secrets.
func (s *Server) redactorFor(ctx context.Context, l server.Lease) (server.Redactor, error) {
	m, ok := s.maskers.get(l.StepID, l.Attempt)
	if !ok {
		project, env, names, err := s.Dispatch.StepSecrets(ctx, l)
		if err != nil {
			return nil, err
		}
		secrets, err := s.openSecretValues(ctx, project, env, names)
		if err != nil {
			return nil, err
		}
		s.maskers.put(l.StepID, l.Attempt, secrets, s.projectCredentialValues(ctx, project))
		m, _ = s.maskers.get(l.StepID, l.Attempt)
	}
	if m == nil || m.Empty() {
		return nil, nil
	}
	return m, nil
}
