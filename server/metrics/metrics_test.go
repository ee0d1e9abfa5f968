package metrics_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/server/metrics"
	"github.com/baton-ci/baton/shared/series"
)

type fakeStore struct {
	mu   sync.Mutex
	fail bool
}

func (f *fakeStore) Queue(context.Context) ([]server.QueueLine, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return nil, errors.New("database down")
	}
	return []server.QueueLine{{Labels: []string{"gpu", "os=linux"}, Ready: 3, Agents: 0, OldestReady: time.Unix(1000, 0)}}, nil
}

func (f *fakeStore) CountStates(context.Context) (server.StateCounts, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return server.StateCounts{}, errors.New("database down")
	}
	return server.StateCounts{Runs: map[string]int{"running": 2}, Steps: map[string]int{"ready": 3, "mystery": 1},
		Agents: map[string]int{"enabled": 4}}, nil
}

type fakeHub struct{}

func (fakeHub) Streams() int         { return 5 }
func (fakeHub) ConnectedAgents() int { return 4 }

func scrape(t *testing.T, m *metrics.Metrics) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	m.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, string(b)
}

// The exposition holds the database gauges (every known state, 0 when
// none, and states this build does not know), the hub's gauges, and
// counters and a histogram that are exact under concurrent updates; a
// failing database leaves out its series and serves the rest.
func TestMetrics(t *testing.T) {
	t.Parallel()
	store := &fakeStore{}
	m := metrics.New(metrics.Config{Store: store, Hub: fakeHub{}, Version: "v9", Logger: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return time.Unix(1060, 0) }})
	var wg sync.WaitGroup
	ready := time.Now().Add(-2 * time.Second)
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.ObserveDispatch(ready, ready.Add(2*time.Second))
			m.Webhook("gitlab", series.WebhookQueued)
		}()
	}
	wg.Wait()
	m.ObserveDispatch(time.Time{}, time.Now()) // unknown: not observed
	var nilMetrics *metrics.Metrics
	nilMetrics.Webhook("github", series.WebhookQueued) // safe
	code, body := scrape(t, m)
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	for _, want := range []string{
		`baton_runs{state="running"} 2`, `baton_runs{state="failed"} 0`, `baton_steps{state="ready"} 3`, `baton_steps{state="mystery"} 1`,
		`baton_agents{state="enabled"} 4`, `baton_agents{state="deleted"} 0`,
		`baton_queue_ready_steps{labels="gpu,os=linux"} 3`, `baton_queue_oldest_ready_seconds{labels="gpu,os=linux"} 60`,
		`baton_queue_matching_agents{labels="gpu,os=linux"} 0`, "baton_control_connections 5", "baton_agents_connected 4",
		"baton_dispatch_latency_seconds_count 100", `baton_dispatch_latency_seconds_bucket{le="2.5"} 100`,
		`baton_dispatch_latency_seconds_bucket{le="1"} 0`,
		`baton_webhook_deliveries_total{outcome="queued",provider="gitlab"} 100`,
		`baton_webhook_deliveries_total{outcome="unauthorized",provider="forgejo"} 0`,
		`baton_server_build_info{protocol="1",version="v9"} 1`, "go_goroutines", "process_start_time_seconds",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	store.mu.Lock()
	store.fail = true
	store.mu.Unlock()
	code, body = scrape(t, m)
	if code != 200 || strings.Contains(body, "baton_steps{") || !strings.Contains(body, "baton_control_connections 5") {
		t.Errorf("with the database down: %d, want 200 without the database series:\n%s", code, body)
	}
}
