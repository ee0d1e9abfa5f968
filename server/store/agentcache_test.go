package store_test

import (
	"testing"
	"time"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/server/store"
)

// An agent's own calls read it from a cache: a change through this store
// shows at once; one through another replica within AgentCacheFor, and
// meanwhile the reservation itself refuses an agent that is not enabled.
func TestRecentAgentAndAStaleView(t *testing.T) {
	eachDB(t, func(t *testing.T, db testDB) {
		ctx := t.Context()
		a, b := db.Open(t), db.Open(t) // two replicas
		if err := a.RegisterAgent(ctx, &server.Agent{ID: "w", Name: "w", SigningKey: make([]byte, 32), HPKEKey: make([]byte, 32)},
			createToken(t, a, "tok")); err != nil {
			t.Fatal(err)
		}
		state := func(s *store.DB) server.AgentState {
			t.Helper()
			ag, err := s.RecentAgent(ctx, "w")
			if err != nil {
				t.Fatal(err)
			}
			return ag.State
		}
		if got := state(a); got != server.AgentEnabled {
			t.Fatalf("a new agent is %s", got)
		}
		if err := a.SetAgentState(ctx, "w", server.AgentDisabled); err != nil {
			t.Fatal(err)
		}
		if got := state(a); got != server.AgentDisabled {
			t.Fatalf("after a disable through this replica, RecentAgent says %s", got)
		}
		if err := a.SetAgentState(ctx, "w", server.AgentEnabled); err != nil {
			t.Fatal(err)
		}
		if got := state(b); got != server.AgentEnabled {
			t.Fatalf("b reads %s", got)
		}

		// Disabled through a: b's view is stale for a moment, and its
		// reservation still refuses the agent.
		if err := a.SetAgentState(ctx, "w", server.AgentDisabled); err != nil {
			t.Fatal(err)
		}
		createRun(t, a, &server.Run{Project: "p", Runbook: "x", Steps: []*server.Step{{Name: "s", Command: "x"}}})
		stale := state(b)
		if st, _, err := b.ReserveStep(ctx, "w", time.Minute); err != nil || st != nil {
			t.Fatalf("b reserved %v, %v for the disabled agent (its view: %s); want nothing", st, err, stale)
		}
		if stale == server.AgentEnabled {
			// The cache at work: it must not outlive AgentCacheFor.
			deadline := time.Now().Add(store.AgentCacheFor + 2*time.Second)
			for state(b) != server.AgentDisabled {
				if time.Now().After(deadline) {
					t.Fatalf("b still reads the agent enabled %s after the disable", store.AgentCacheFor+2*time.Second)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		if err := a.SetAgentState(ctx, "w", server.AgentEnabled); err != nil {
			t.Fatal(err)
		}
		if st, _, err := a.ReserveStep(ctx, "w", time.Minute); err != nil || st == nil {
			t.Fatalf("enabled again: reserve = %v, %v", st, err)
		}
	})
}
