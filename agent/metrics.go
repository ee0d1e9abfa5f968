package agent

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/baton-ci/baton/shared/protocol"
	"github.com/baton-ci/baton/shared/series"
)

// Metrics are the agent's Prometheus series (series.Agent) in a registry
// of their own. A nil *Metrics counts nothing; every method is safe for
// concurrent use.
type Metrics struct {
	reg          *prometheus.Registry
	running      prometheus.Gauge
	durations    *prometheus.HistogramVec
	reconnects   prometheus.Counter
	reservations prometheus.Counter
}

// NewMetrics registers the agent's series; version labels the build info.
func NewMetrics(version string) *Metrics {
	help := map[string]string{}
	for _, s := range series.Agent() {
		help[s.Name] = s.Help
	}
	m := &Metrics{
		reg:     prometheus.NewRegistry(),
		running: prometheus.NewGauge(prometheus.GaugeOpts{Name: series.AgentRunningSteps, Help: help[series.AgentRunningSteps]}),
		durations: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: series.AgentStepDuration, Help: help[series.AgentStepDuration], Buckets: series.StepBuckets,
		}, []string{"result"}),
		reconnects:   prometheus.NewCounter(prometheus.CounterOpts{Name: series.AgentReconnects, Help: help[series.AgentReconnects]}),
		reservations: prometheus.NewCounter(prometheus.CounterOpts{Name: series.AgentReservations, Help: help[series.AgentReservations]}),
	}
	if version == "" {
		version = "dev"
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: series.AgentBuildInfo, Help: help[series.AgentBuildInfo],
		ConstLabels: prometheus.Labels{"version": version, "protocol": strconv.Itoa(protocol.ProtocolVersion)},
	})
	build.Set(1)
	m.reg.MustRegister(m.running, m.durations, m.reconnects, m.reservations, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the exposition; the caller authenticates.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

func (m *Metrics) setRunning(n int) {
	if m != nil {
		m.running.Set(float64(n))
	}
}

// stepEnded records a step's duration by result: succeeded, or the
// failure reason (a short, fixed set: engine.Reason).
func (m *Metrics) stepEnded(res protocol.StepResult, took time.Duration) {
	if m == nil {
		return
	}
	result := "succeeded"
	if res.Reason != "" {
		result = string(res.Reason)
	}
	m.durations.WithLabelValues(result).Observe(took.Seconds())
}

func (m *Metrics) reconnected() {
	if m != nil {
		m.reconnects.Inc()
	}
}

func (m *Metrics) reserved() {
	if m != nil {
		m.reservations.Inc()
	}
}

// metricsGate serves /metrics only to a caller with the bearer token.
type metricsGate struct {
	next http.Handler
	hash [sha256.Size]byte
}

func (g *metricsGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	sum := sha256.Sum256([]byte(got))
	if !ok || subtle.ConstantTimeCompare(sum[:], g.hash[:]) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="baton-agent metrics"`)
		http.Error(w, "metrics need the bearer token given by --metrics-token", http.StatusUnauthorized)
		return
	}
	g.next.ServeHTTP(w, r)
}
