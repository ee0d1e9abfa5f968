package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// postgresDSN returns a DSN for an empty schema of its own in the database
// of BATON_TEST_POSTGRES, dropped when the test ends; without the variable
// the test skips, or fails under CI=true.
func postgresDSN(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("BATON_TEST_POSTGRES")
	if dsn == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("BATON_TEST_POSTGRES is not set: CI=true needs the PostgreSQL end-to-end tests (run .ci/postgres for a DSN)")
		}
		t.Skip("SKIPPING: BATON_TEST_POSTGRES is not set")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("BATON_TEST_POSTGRES: %v", err)
	}
	defer conn.Close(ctx)
	b := make([]byte, 8)
	rand.Read(b)
	schema := "e2e_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // registered first: runs after the servers stop
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("BATON_TEST_POSTGRES must be a postgres:// URL here")
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Two servers on one PostgreSQL database, an agent on each. Runs submitted
// to either complete with every step reserved exactly once; a run submitted
// to one server wakes the agent waiting on the other at once (a rescan
// would take 2.5 s or more); and an agent disabled through one server hears
// it on its control channel to the other within a second or two.
func TestReplicasShareOnePostgres(t *testing.T) {
	t.Parallel()
	dsn := postgresDSN(t)
	dataDir := t.TempDir() // one set of keys and one admin token for both
	flags := []string{"--db", dsn, "--agent-ping-interval", "500ms"}
	a := startNamedServer(t, "server-a", freeAddr(t), dataDir, flags...)
	b := startNamedServer(t, "server-b", freeAddr(t), dataDir, flags...)
	for _, s := range []*server{a, b} {
		waitFor(t, 10*time.Second, s.name+" listening to the other replica", func() bool {
			return strings.Contains(s.output(), "replica notifications: listening")
		})
	}
	if strings.Contains(a.output(), dsnPassword(dsn)) || strings.Contains(b.output(), dsnPassword(dsn)) {
		t.Error("a server logged the database password")
	}

	token := a.registrationToken(t)
	agentA := startAgent(t, a, token, t.TempDir(), "on-a")
	agentB := startAgent(t, b, token, t.TempDir(), "on-b")
	ids := map[string]string{} // name -> id
	for _, ag := range waitAgents(t, b, 2) {
		ids[ag.Name] = ag.ID
	}
	for _, c := range []struct {
		s    *server
		name string
	}{{a, "on-a"}, {b, "on-b"}} {
		waitFor(t, 10*time.Second, c.name+" connected to "+c.s.name, func() bool {
			var v struct{ Connected bool }
			c.s.do(t, "GET", "/api/v1/agents/"+ids[c.name], "", nil, &v)
			return v.Connected
		})
	}

	var book strings.Builder
	book.WriteString("steps:\n")
	for i := range 6 {
		fmt.Fprintf(&book, "  - name: s%d\n    command: sleep 0.3; echo step %d\n", i, i)
	}
	runs := []runView{a.submit(t, "replicas", book.String()), b.submit(t, "replicas", book.String())}
	ranOn := map[string]int{}
	for i, r := range runs {
		got := []*server{b, a}[i].waitRun(t, r.ID, 60*time.Second)
		if got.State != "succeeded" {
			t.Fatalf("run %d: %s: %+v", i, got.State, got.Steps)
		}
		for _, st := range got.Steps {
			if st.Attempt != 1 || len(st.Attempts) != 1 {
				t.Errorf("run %d step %s: attempt %d with %d attempts recorded, want exactly one", i, st.Name, st.Attempt, len(st.Attempts))
			}
			ranOn[st.AgentID]++
		}
	}
	if ranOn[ids["on-a"]] == 0 || ranOn[ids["on-b"]] == 0 {
		t.Errorf("steps ran %d on the agent of a and %d on that of b; want both to work", ranOn[ids["on-a"]], ranOn[ids["on-b"]])
	}

	// Disable the agent of a through b: the hint crosses replicas.
	disabled := time.Now()
	if code := b.do(t, "POST", "/api/v1/agents/"+ids["on-a"]+"/disable", "", nil, nil); code != 200 {
		t.Fatalf("disable: %d", code)
	}
	waitFor(t, 5*time.Second, "the agent of a to be disabled", func() bool { return strings.Contains(agentA.output(), "to=disabled") })
	t.Logf("the agent of a disabled %s after the request to b", time.Since(disabled).Round(time.Millisecond))
	if d := time.Since(disabled); d > 2*time.Second {
		t.Errorf("the agent of a heard of its disable after %s; want within 2 s", d)
	}

	// Only the agent of b can work now: a run submitted to a wakes it.
	submitted := time.Now()
	r := a.submit(t, "replicas", "steps:\n  - name: one\n    command: echo one\n")
	got := a.waitRun(t, r.ID, 30*time.Second)
	st := got.step(t, "one")
	if got.State != "succeeded" || st.AgentID != ids["on-b"] || st.StartedAt == nil {
		t.Fatalf("run on a: %s, step %+v; want it run by the agent of b", got.State, st)
	}
	t.Logf("a step submitted to a was reserved through b %s later", st.StartedAt.Sub(submitted).Round(time.Millisecond))
	if d := st.StartedAt.Sub(submitted); d > 2*time.Second {
		t.Errorf("reserved %s after submission; want within 2 s (the wake did not cross replicas)", d)
	}

	// And the agent of b, connected to b, disabled through a.
	disabled = time.Now()
	if code := a.do(t, "POST", "/api/v1/agents/"+ids["on-b"]+"/disable", "", nil, nil); code != 200 {
		t.Fatalf("disable: %d", code)
	}
	waitFor(t, 5*time.Second, "the agent of b to be disabled", func() bool { return strings.Contains(agentB.output(), "to=disabled") })
	if d := time.Since(disabled); d > 2*time.Second {
		t.Errorf("the agent of b heard of its disable after %s; want within 2 s", d)
	}

	// The database agrees: no step was ever reserved twice.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var steps, attempts, multi int
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM steps), (SELECT count(*) FROM step_attempts),
		(SELECT count(*) FROM steps WHERE attempt <> 1)`).Scan(&steps, &attempts, &multi); err != nil {
		t.Fatal(err)
	}
	if steps != 13 || attempts != 13 || multi != 0 {
		t.Errorf("%d steps, %d attempts, %d steps with attempt <> 1; want 13, 13, 0", steps, attempts, multi)
	}
}

func dsnPassword(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "\x00"
	}
	if p, ok := u.User.Password(); ok && p != "" {
		return ":" + p + "@"
	}
	return "\x00"
}
