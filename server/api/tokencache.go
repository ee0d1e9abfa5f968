package api

import (
	"sync"
	"time"
)

// tokenCache remembers agent access tokens whose signature and claims were
// verified, until they expire: an agent makes several calls per step with
// the same token, and checking an Ed25519 signature each time cost more
// than the rest of the token's handling. A token is only ever added after a
// full verification with the server's key, and a hit still checks expiry
// on the server's clock.
type tokenCache struct {
	mu     sync.Mutex
	tokens map[string]verifiedToken
}

type verifiedToken struct {
	subject string
	expires time.Time // exp plus the leeway verification allows
}

// maxCachedTokens bounds the cache; past it, expired entries are dropped,
// and if that is not enough, all of them.
const maxCachedTokens = 100_000

func (c *tokenCache) get(token string, now time.Time) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.tokens[token]
	if !ok {
		return "", false
	}
	if !now.Before(v.expires) {
		delete(c.tokens, token)
		return "", false
	}
	return v.subject, true
}

func (c *tokenCache) put(token, subject string, expires, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tokens == nil {
		c.tokens = map[string]verifiedToken{}
	}
	if len(c.tokens) >= maxCachedTokens {
		for t, v := range c.tokens {
			if !now.Before(v.expires) {
				delete(c.tokens, t)
			}
		}
		if len(c.tokens) >= maxCachedTokens {
			clear(c.tokens)
		}
	}
	c.tokens[token] = verifiedToken{subject: subject, expires: expires}
}
