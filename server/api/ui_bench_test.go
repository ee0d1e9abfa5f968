package api_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/server/api"
	"github.com/baton-ci/baton/server/control"
	"github.com/baton-ci/baton/server/store"
	"github.com/baton-ci/baton/shared/protocol"
	"github.com/baton-ci/baton/ui"
)

// BenchmarkPages renders every UI page server-side against a SQLite
// database holding 1,000 agents and 10,000 runs (40,000 steps, 200 of them
// running); each page must take under 100 ms. Run it with
// go test -run '^$' -bench BenchmarkPages ./server/api/
func BenchmarkPages(b *testing.B) {
	const agents, runs, running, projects = 1000, 10_000, 200, 20
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, filepath.Join(b.TempDir(), "baton.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	start := time.Now()
	tokenHash := sha256.Sum256([]byte("brt_bench"))
	if err := db.CreateRegistrationToken(ctx, &server.RegistrationToken{Hash: tokenHash[:], Description: "bench"}); err != nil {
		b.Fatal(err)
	}
	agentIDs := make([]string, agents)
	for i := range agents {
		a := &server.Agent{ID: uuid.NewString(), Name: fmt.Sprintf("agent-%04d", i), Version: "dev",
			Labels: []string{"os=linux", fmt.Sprintf("zone=%d", i%5)}, SigningKey: make([]byte, 32), HPKEKey: make([]byte, 32)}
		a.SigningKey[0], a.SigningKey[1] = byte(i), byte(i>>8)
		if err := db.RegisterAgent(ctx, a, tokenHash[:]); err != nil {
			b.Fatal(err)
		}
		agentIDs[i] = a.ID
	}
	var lastRun string
	for i := range runs {
		run := &server.Run{Project: fmt.Sprintf("project-%02d", i%projects), Name: "diamond", Runbook: "steps: [a, b, c, d]\n",
			Steps: []*server.Step{
				{Name: "a", Command: "echo a"},
				{Name: "b", Command: "echo b", DependsOn: []string{"a"}},
				{Name: "c", Command: "echo c", DependsOn: []string{"a"}},
				{Name: "d", Command: "echo d", DependsOn: []string{"b", "c"}},
			}}
		if err := db.CreateRun(ctx, run); err != nil {
			b.Fatal(err)
		}
		lastRun = run.ID
	}
	for i := range running {
		if _, _, err := db.ReserveStep(ctx, agentIDs[i], time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	u := &server.User{Name: "bench", Role: server.RoleAdmin, PasswordHash: []byte("x")}
	if err := db.CreateUser(ctx, u); err != nil {
		b.Fatal(err)
	}
	cookie := "bench-session"
	sessHash := sha256.Sum256([]byte(cookie))
	if err := db.CreateSession(ctx, &server.Session{Hash: sessHash[:], UserID: u.ID, CSRF: "c", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded %d agents, %d runs in %s", agents, runs, time.Since(start).Round(time.Millisecond))
	srv := &api.Server{Runs: db, Dispatch: db, Agents: db, Secrets: db, Projects: db, Hooks: db, Schedules: db, Audit: db,
		Queue: db, Notifications: db, Users: db, RunList: db, UI: ui.Handler(), AdminToken: adminToken,
		Control: control.New(time.Second, slog.New(slog.DiscardHandler)), Wake: api.NewWake(),
		AgentConfig: protocol.AgentConfig{PoolSize: 2}, Logger: slog.New(slog.DiscardHandler)}
	h := srv.Router()
	pages := []struct{ name, path string }{
		{"fleet", "/fleet"},
		{"fleet-filtered", "/fleet?state=ready&label=zone%3D1"},
		{"runs", "/runs"},
		{"runs-project", "/runs?project=project-07"},
		{"runs-state", "/runs?state=running"},
		{"runs-page-150", "/runs?page=150"},
		{"run", "/runs/" + lastRun},
		{"projects", "/projects"},
		{"project", "/projects/project-03"},
	}
	for _, p := range pages {
		b.Run(p.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, p.path, nil)
			req.AddCookie(&http.Cookie{Name: "baton_session", Value: cookie})
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("GET %s = %d: %.300s", p.path, rec.Code, rec.Body.String())
				}
			}
			if per := b.Elapsed() / time.Duration(b.N); per > 100*time.Millisecond {
				b.Errorf("GET %s takes %s per render; the budget is 100ms", p.path, per)
			}
		})
	}
}
