package agent

import (
	"context"
	"log/slog"
	"regexp"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-ci/baton/agent/internal/syncbuf"
	"github.com/baton-ci/baton/shared/protocol"
)

// incompatibleServer registers the agent, then refuses its protocol on
// every state check, as a server replaced by an incompatible one does
// (its token call answers 426).
type incompatibleServer struct {
	*fakeServer
	checks atomic.Int32
}

func (s *incompatibleServer) State(ctx context.Context) (protocol.AgentState, error) {
	s.checks.Add(1)
	return protocol.AgentState{}, statusError(426)
}

// After registration, a 426 on the state check is logged as a version
// problem and retried on the slow backoff, not every half second.
func TestAgentWaitsSlowlyForACompatibleServer(t *testing.T) {
	t.Parallel()
	srv := &incompatibleServer{fakeServer: newFakeServer()}
	a := testAgent(t, srv, &scriptExecutor{})
	var logs syncbuf.Buffer
	a.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	if err := a.Run(ctx); err != nil {
		t.Fatalf("Run = %v", err)
	}
	// The channel coming up and the first check; the retry waits 5 s.
	if n := srv.checks.Load(); n < 1 || n > 3 {
		t.Errorf("%d state checks in 1.5 s; want the first ones and then a slow retry", n)
	}
	out := logs.String()
	m := regexp.MustCompile(`upgrade the agent.*retry_in=(\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no version error in the log:\n%s", out)
	}
	if d, err := time.ParseDuration(m[1]); err != nil || d < 2*time.Second {
		t.Errorf("retry in %s (%v); want the slow refusal backoff (seconds)", m[1], err)
	}
}
