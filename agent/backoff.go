package agent

import (
	"math/rand/v2"
	"time"
)

// Backoff is capped exponential backoff with full jitter, so a fleet of
// agents does not hit a restarting server in lockstep.
type Backoff struct {
	Min, Max time.Duration
}

// Delay returns the wait before retry number attempt (0-based): a random
// duration between Min/2 and min(Max, Min*2^attempt).
func (b Backoff) Delay(attempt int) time.Duration {
	ceiling := b.Max
	if attempt < 32 {
		if d := b.Min << attempt; d > 0 && d < ceiling {
			ceiling = d
		}
	}
	floor := b.Min / 2
	if ceiling <= floor {
		return ceiling
	}
	return floor + rand.N(ceiling-floor)
}
