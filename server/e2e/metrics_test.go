package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/baton-ci/baton/shared/series"
)

// scrape fetches a /metrics page with a bearer token and parses it with
// the Prometheus text parser.
func scrape(t *testing.T, url, token string) map[string]*dto.MetricFamily {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Accept", "text/plain") // the text format, whatever the default
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("%s does not parse as the Prometheus text format: %v", url, err)
	}
	return families
}

// value returns the value of the family's sample whose labels include
// want (a histogram's sample count), and whether there is one.
func value(f *dto.MetricFamily, want map[string]string) (float64, bool) {
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// checkSeries fails for every listed series the scrape lacks, or whose
// type or label names differ from the list.
func checkSeries(t *testing.T, what string, families map[string]*dto.MetricFamily, list []series.Series) {
	t.Helper()
	for _, s := range list {
		f := families[s.Name]
		if f == nil || len(f.Metric) == 0 {
			t.Errorf("%s /metrics lacks %s", what, s.Name)
			continue
		}
		if got := strings.ToLower(f.GetType().String()); got != string(s.Kind) {
			t.Errorf("%s: %s is a %s, the list says %s", what, s.Name, got, s.Kind)
		}
		for _, m := range f.Metric {
			var names []string
			for _, l := range m.Label {
				names = append(names, l.GetName())
			}
			want := append([]string{}, s.Labels...)
			slices.Sort(names) // the exposition sorts label names
			slices.Sort(want)
			if fmt.Sprint(names) != fmt.Sprint(want) {
				t.Errorf("%s: %s has labels %v, the list says %v", what, s.Name, names, s.Labels)
				break
			}
		}
	}
}

// atLeast fails unless the sample exists and is at least min.
func atLeast(t *testing.T, families map[string]*dto.MetricFamily, name string, labels map[string]string, min float64) {
	t.Helper()
	v, ok := value(families[name], labels)
	if !ok || v < min {
		t.Errorf("%s%v = %v (present %t), want at least %v", name, labels, v, ok, min)
	}
}

// exactly fails unless the sample exists and equals want.
func exactly(t *testing.T, families map[string]*dto.MetricFamily, name string, labels map[string]string, want float64) {
	t.Helper()
	v, ok := value(families[name], labels)
	if !ok || v != want {
		t.Errorf("%s%v = %v (present %t), want %v", name, labels, v, ok, want)
	}
}

// The real server and agent, with JSON logs and agent metrics on: a
// runbook runs, both /metrics pages parse with the Prometheus text parser
// and hold every series shared/series lists, with plausible values, and
// the main log lines are JSON objects carrying run_id, step and agent_id.
func TestMetricsAndJSONLogs(t *testing.T) {
	t.Parallel()
	s := startServer(t, freeAddr(t), t.TempDir(), "--log-format", "json")
	health := freeAddr(t)
	const metricsToken = "agent-metrics-token-0123456789"
	agent := startAgent(t, s, s.registrationToken(t), t.TempDir(), "metrics", "--health-addr", health,
		"--log-format", "json", "--metrics-token", metricsToken)
	agentID := waitAgents(t, s, 1)[0].ID

	run := s.submit(t, "metrics", "steps:\n  - name: first\n    command: echo one\n  - name: second\n    depends_on: [first]\n    command: echo two\n")
	// A step no agent can take keeps a queue line for the queue series.
	s.submit(t, "metrics", "steps:\n  - name: train\n    runs_on: [gpu]\n    command: echo never\n")
	if got := s.waitRun(t, run.ID, 60*time.Second); got.State != "succeeded" {
		t.Fatalf("run %s: %+v", got.State, got)
	}
	// A delivery for a project without a webhook secret: refused, counted.
	resp, err := http.Post(s.url+"/api/v1/hooks/github/metrics", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unsigned delivery: %d", resp.StatusCode)
	}

	// The server: no token, no metrics.
	if resp, err := http.Get(s.url + "/metrics"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("server /metrics without the admin token: %v %v", resp.StatusCode, err)
	}
	sm := scrape(t, s.url+"/metrics", s.admin)
	checkSeries(t, "server", sm, series.Server())
	exactly(t, sm, series.Runs, map[string]string{"state": "succeeded"}, 1)
	exactly(t, sm, series.Runs, map[string]string{"state": "pending"}, 1)
	exactly(t, sm, series.Steps, map[string]string{"state": "succeeded"}, 2)
	exactly(t, sm, series.Steps, map[string]string{"state": "ready"}, 1)
	exactly(t, sm, series.Steps, map[string]string{"state": "cancelled"}, 0)
	exactly(t, sm, series.QueueReadySteps, map[string]string{"labels": "gpu"}, 1)
	exactly(t, sm, series.QueueMatchingAgents, map[string]string{"labels": "gpu"}, 0)
	atLeast(t, sm, series.QueueOldestReady, map[string]string{"labels": "gpu"}, 0)
	exactly(t, sm, series.Agents, map[string]string{"state": "enabled"}, 1)
	exactly(t, sm, series.AgentsConnected, nil, 1)
	exactly(t, sm, series.ControlConnections, nil, 1)
	atLeast(t, sm, series.DispatchLatency, nil, 2) // both steps were reserved
	exactly(t, sm, series.WebhookDeliveries, map[string]string{"provider": "github", "outcome": series.WebhookUnauthorized}, 1)
	exactly(t, sm, series.WebhookDeliveries, map[string]string{"provider": "gitlab", "outcome": series.WebhookQueued}, 0)
	exactly(t, sm, series.ServerBuildInfo, nil, 1)
	atLeast(t, sm, series.GoGoroutines, nil, 5)
	atLeast(t, sm, series.ProcessResidentMemory, nil, 1<<20)
	if h := sm[series.DispatchLatency].Metric[0].Histogram; h.GetSampleSum() < 0 || h.GetSampleSum() > 60 {
		t.Errorf("dispatch latency sum %v s for two steps of a one-minute test", h.GetSampleSum())
	}

	// The agent: /metrics on the health listener, only with its token.
	agentURL := "http://" + health + "/metrics"
	for _, auth := range []string{"", "Bearer wrong-token-0123456789"} {
		req, _ := http.NewRequest("GET", agentURL, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("agent /metrics with %q: %d, want 401", auth, resp.StatusCode)
		}
	}
	var am map[string]*dto.MetricFamily
	waitFor(t, 10*time.Second, "the agent to count both steps as done", func() bool {
		am = scrape(t, agentURL, metricsToken)
		n, _ := value(am[series.AgentStepDuration], map[string]string{"result": "succeeded"})
		return n >= 2
	})
	checkSeries(t, "agent", am, series.Agent())
	exactly(t, am, series.AgentRunningSteps, nil, 0)
	exactly(t, am, series.AgentReservations, nil, 2)
	atLeast(t, am, series.AgentReconnects, nil, 0)
	exactly(t, am, series.AgentBuildInfo, nil, 1)

	// JSON logs: every line of the agent is a JSON object; the server's are
	// too, but for the admin token notice it prints on first start.
	type line map[string]any
	parse := func(who, out string, strict bool) []line {
		var lines []line
		sc := bufio.NewScanner(strings.NewReader(out))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			text := sc.Text()
			var l line
			if err := json.Unmarshal([]byte(text), &l); err != nil {
				if strict || strings.HasPrefix(text, "{") {
					t.Errorf("%s log line is not JSON: %q", who, text)
				}
				continue
			}
			for _, k := range []string{"time", "level", "msg"} {
				if _, ok := l[k]; !ok {
					t.Errorf("%s log line lacks %q: %q", who, k, text)
				}
			}
			lines = append(lines, l)
		}
		return lines
	}
	want := func(who string, lines []line, msg string, keys ...string) {
		t.Helper()
		for _, l := range lines {
			if l["msg"] != msg {
				continue
			}
			for _, k := range keys {
				if v, _ := l[k].(string); v == "" {
					t.Errorf("%s log %q lacks %s: %v", who, msg, k, l)
				}
			}
			if l["agent_id"] != nil && l["agent_id"] != agentID {
				t.Errorf("%s log %q: agent_id %v, want %s", who, msg, l["agent_id"], agentID)
			}
			return
		}
		t.Errorf("%s logged no %q", who, msg)
	}
	agent.stop() // flush and end the agent's log
	serverLines := parse("server", s.output(), false)
	agentLines := parse("agent", agent.output(), true)
	want("server", serverLines, "agent registered", "agent_id")
	want("server", serverLines, "control channel connected", "agent_id")
	want("server", serverLines, "step reserved", "run_id", "step", "agent_id")
	want("server", serverLines, "step finished", "run_id", "step", "agent_id")
	want("agent", agentLines, "registered", "agent_id")
	want("agent", agentLines, "control channel connected", "agent_id")
	want("agent", agentLines, "step started", "run_id", "step", "agent_id")
	want("agent", agentLines, "step finished", "run_id", "step", "agent_id")
}
