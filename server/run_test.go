package server_test

import (
	"testing"
	"time"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/shared/engine"
)

func TestRetryPolicy(t *testing.T) {
	t.Parallel()
	p := server.RetryPolicy{Max: 3, Delay: time.Second, On: []engine.Reason{engine.ReasonExitCode, engine.ReasonTimeout}}
	exp := p
	exp.Exponential = true
	cases := []struct {
		policy    server.RetryPolicy
		attempt   int
		reason    engine.Reason
		wantDelay time.Duration
		wantRetry bool
	}{
		{p, 1, engine.ReasonExitCode, time.Second, true},
		{p, 3, engine.ReasonTimeout, time.Second, true},
		{p, 4, engine.ReasonExitCode, 0, false}, // max 3 retries: attempts 1..4
		{p, 1, engine.ReasonInfra, 0, false},    // not in On
		{p, 1, engine.ReasonCancelled, 0, false},
		{exp, 1, engine.ReasonExitCode, time.Second, true},
		{exp, 3, engine.ReasonExitCode, 4 * time.Second, true},
		{server.RetryPolicy{}, 1, engine.ReasonExitCode, 0, false},
	}
	for _, c := range cases {
		d, ok := c.policy.Retries(c.attempt, c.reason)
		if d != c.wantDelay || ok != c.wantRetry {
			t.Errorf("%+v.Retries(%d, %s) = %s, %v; want %s, %v", c.policy, c.attempt, c.reason, d, ok, c.wantDelay, c.wantRetry)
		}
	}
}
