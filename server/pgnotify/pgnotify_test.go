package pgnotify_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/baton-ci/baton/server/pgnotify"
)

// dsn returns BATON_TEST_POSTGRES; without it the test skips, or fails
// under CI=true.
func dsn(t *testing.T) string {
	t.Helper()
	d := os.Getenv("BATON_TEST_POSTGRES")
	if d == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("BATON_TEST_POSTGRES is not set: CI=true needs the PostgreSQL tests (run .ci/postgres for a DSN)")
		}
		t.Skip("SKIPPING: BATON_TEST_POSTGRES is not set")
	}
	return d
}

func unique(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// replica is a running Relay and what it passed on. Other tests may share
// the database and its channels, so only this test's agent ids count.
type replica struct {
	*pgnotify.Relay
	id      string
	wakes   chan struct{}
	control chan string
}

func startRelay(t *testing.T, ctx context.Context, dsn string) *replica {
	t.Helper()
	r := &replica{id: unique("replica"), wakes: make(chan struct{}, 100), control: make(chan string, 2000)}
	r.Relay = pgnotify.New(pgnotify.Config{
		DSN: dsn, Replica: r.id, KeepAlive: 500 * time.Millisecond,
		OnWake: func() {
			select {
			case r.wakes <- struct{}{}:
			default:
			}
		},
		OnControl: func(agentID, kind string) { r.control <- agentID + " " + kind },
	})
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { r.Run(runCtx) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	waitUntil(t, ctx, "relay listening", r.Listening)
	<-r.wakes // the wake after connecting
	return r
}

func waitUntil(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// expectHint waits for the hint for agent (ignoring other tests' hints).
func (r *replica) expectHint(t *testing.T, ctx context.Context, want string) {
	t.Helper()
	for {
		select {
		case got := <-r.control:
			if got == want {
				return
			}
		case <-ctx.Done():
			t.Fatalf("replica never got hint %q", want)
		}
	}
}

func (r *replica) expectWake(t *testing.T, ctx context.Context) {
	t.Helper()
	select {
	case <-r.wakes:
	case <-ctx.Done():
		t.Fatal("replica was never woken")
	}
}

// A wake and a control hint from one replica reach the other; a replica
// ignores its own.
func TestRelayBetweenReplicas(t *testing.T) {
	t.Parallel()
	dsn := dsn(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	a, b := startRelay(t, ctx, dsn), startRelay(t, ctx, dsn)

	a.Wake()
	b.expectWake(t, ctx)
	agent := unique("agent")
	a.Control(agent, "disable")
	b.expectHint(t, ctx, agent+" disable")
	b.Control(agent, "enable")
	a.expectHint(t, ctx, agent+" enable")
	// Both directions done: a's own hint, sent first, would have arrived
	// at a before b's.
	select {
	case got := <-a.control:
		if got == agent+" disable" {
			t.Errorf("replica a was handed its own hint")
		}
	default:
	}
}

// When its connection is killed, the relay reconnects, wakes its own
// long-polls (a notification may have been missed), and relays again.
func TestRelayReconnects(t *testing.T) {
	t.Parallel()
	dsn := dsn(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	a, b := startRelay(t, ctx, dsn), startRelay(t, ctx, dsn)

	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	backend := func() (pid int) {
		admin.QueryRow(ctx, `SELECT COALESCE(MAX(pid), 0) FROM pg_stat_activity WHERE application_name = $1`,
			"baton-notify "+b.id).Scan(&pid)
		return pid
	}
	old := backend()
	var killed bool
	if err := admin.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, old).Scan(&killed); err != nil || !killed {
		t.Fatalf("terminate b's connection (pid %d): %v, %v", old, killed, err)
	}
	// Reconnected: a new backend, listening (the old session stopped
	// listening before the new one connected).
	waitUntil(t, ctx, "b to reconnect", func() bool {
		pid := backend()
		return pid != 0 && pid != old && b.Listening()
	})
	b.expectWake(t, ctx)
	agent := unique("agent")
	a.Control(agent, "drain")
	b.expectHint(t, ctx, agent+" drain")
}

// A hint for many agents (a fleet command) reaches the other replica for
// every one of them, though they take several notifications.
func TestRelayControlMany(t *testing.T) {
	t.Parallel()
	dsn := dsn(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	a := startRelay(t, ctx, dsn)
	b := startRelay(t, ctx, dsn)
	prefix := unique("fleet")
	var ids []string
	for i := range 600 { // about 28 KB of ids: four notifications
		ids = append(ids, fmt.Sprintf("%s-%04d-%s", prefix, i, strings.Repeat("x", 20)))
	}
	a.ControlMany(ids, "drain")
	want := map[string]bool{}
	for _, id := range ids {
		want[id+" drain"] = true
	}
	for len(want) > 0 {
		select {
		case got := <-b.control:
			delete(want, got)
		case <-ctx.Done():
			t.Fatalf("%d of %d hints never arrived", len(want), len(ids))
		}
	}
}
