package agent

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-ci/baton/shared/engine"
	"github.com/baton-ci/baton/shared/protocol"
)

// /metrics is off until ServeMetrics; then it needs the bearer token.
// Counters are exact under concurrent updates.
func TestHealthMetrics(t *testing.T) {
	t.Parallel()
	h := NewHealth()
	srv := httptest.NewServer(h)
	defer srv.Close()
	get := func(auth string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+"/metrics", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := get(""); code != 404 || !strings.Contains(body, "--metrics-token") {
		t.Errorf("/metrics before ServeMetrics: %d %q", code, body)
	}
	h2 := NewHealth()
	m := NewMetrics("v1.2.3")
	h2.ServeMetrics(m, "a-metrics-token-of-some-length")
	srv.Config.Handler = h2
	for _, auth := range []string{"", "Bearer nope", "a-metrics-token-of-some-length", "Basic a-metrics-token-of-some-length"} {
		if code, _ := get(auth); code != http.StatusUnauthorized {
			t.Errorf("/metrics with %q: %d, want 401", auth, code)
		}
	}
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.reserved()
			m.reconnected()
			m.stepEnded(protocol.StepResult{Reason: engine.ReasonExitCode}, time.Second)
		}()
	}
	wg.Wait()
	m.setRunning(3)
	code, body := get("Bearer a-metrics-token-of-some-length")
	if code != 200 {
		t.Fatalf("/metrics with the token: %d", code)
	}
	for _, want := range []string{
		"baton_agent_reservations_total 50", "baton_agent_control_reconnects_total 50", "baton_agent_running_steps 3",
		`baton_agent_step_duration_seconds_count{result="exit_code"} 50`, `baton_agent_build_info{protocol="1",version="v1.2.3"} 1`,
		"go_goroutines", "process_resident_memory_bytes",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if code, _ := get(""); code != 401 { // the probes are unchanged
		t.Errorf("second check: %d", code)
	}
	var nilMetrics *Metrics // an agent without metrics counts nothing, safely
	nilMetrics.reserved()
	nilMetrics.setRunning(1)
}
