// Package metrics is the server's Prometheus exposition (/metrics), built
// on github.com/prometheus/client_golang with a registry of its own (no
// global state): gauges read from the database at scrape time (runs, steps,
// agents by state; the queue), gauges read from the control hub (streams
// open on this replica), and counters and histograms the handlers update
// (dispatch latency, webhook deliveries), safe for concurrent use.
//
// With several replicas, the database gauges are cluster-wide (every
// replica reports the same values) and the in-process ones are per replica
// (sum them). shared/series names every series and its scope.
package metrics

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/shared/engine"
	"github.com/baton-ci/baton/shared/protocol"
	"github.com/baton-ci/baton/shared/series"
)

// Store is what the scrape reads from the database.
type Store interface {
	Queue(ctx context.Context) ([]server.QueueLine, error)
	CountStates(ctx context.Context) (server.StateCounts, error)
}

// Hub reports this replica's control-channel streams.
type Hub interface {
	// Streams is how many control streams are open.
	Streams() int
	// ConnectedAgents is how many agents have at least one open stream.
	ConnectedAgents() int
}

// Config is what New needs; Store and Hub are required.
type Config struct {
	Store   Store
	Hub     Hub
	Version string
	Logger  *slog.Logger
	// Timeout bounds the database queries of one scrape (default 10 s).
	Timeout time.Duration
	// Now is the clock for the queue's ages (default time.Now).
	Now func() time.Time
}

// Metrics holds the registry and the in-process instruments. A nil
// *Metrics counts nothing (its methods are safe to call).
type Metrics struct {
	reg      *prometheus.Registry
	handler  http.Handler
	dispatch prometheus.Histogram
	webhooks *prometheus.CounterVec
}

// New registers every server series (see series.Server).
func New(cfg Config) *Metrics {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	help := map[string]string{}
	for _, s := range series.Server() {
		help[s.Name] = s.Help
	}
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.dispatch = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: series.DispatchLatency, Help: help[series.DispatchLatency], Buckets: series.DispatchBuckets,
	})
	m.webhooks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: series.WebhookDeliveries, Help: help[series.WebhookDeliveries],
	}, []string{"provider", "outcome"})
	for _, p := range series.WebhookProviders() {
		for _, o := range series.WebhookOutcomes() {
			m.webhooks.WithLabelValues(p, o) // present at 0 from the start
		}
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: series.ServerBuildInfo, Help: help[series.ServerBuildInfo],
		ConstLabels: prometheus.Labels{"version": cfg.Version, "protocol": strconv.Itoa(protocol.ProtocolVersion)},
	})
	build.Set(1)
	m.reg.MustRegister(
		m.dispatch, m.webhooks, build,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: series.ControlConnections, Help: help[series.ControlConnections]},
			func() float64 { return float64(cfg.Hub.Streams()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: series.AgentsConnected, Help: help[series.AgentsConnected]},
			func() float64 { return float64(cfg.Hub.ConnectedAgents()) }),
		&dbCollector{cfg: cfg, help: help},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      slogPrinter{cfg.Logger},
		ErrorHandling: promhttp.ContinueOnError, // a failed query leaves out its series, not the rest
	})
	return m
}

// ServeHTTP serves the exposition (the caller authenticates).
func (m *Metrics) ServeHTTP(w http.ResponseWriter, r *http.Request) { m.handler.ServeHTTP(w, r) }

// Registry is the registry, for tests and for extra collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ObserveDispatch records how long a step waited between becoming ready
// and its reservation. A zero readyAt (not known) is not observed.
func (m *Metrics) ObserveDispatch(readyAt, reservedAt time.Time) {
	if m == nil || readyAt.IsZero() {
		return
	}
	m.dispatch.Observe(max(reservedAt.Sub(readyAt).Seconds(), 0))
}

// Webhook counts a delivery by provider (one of series.WebhookProviders)
// and outcome (one of series.WebhookOutcomes).
func (m *Metrics) Webhook(provider, outcome string) {
	if m == nil {
		return
	}
	m.webhooks.WithLabelValues(provider, outcome).Inc()
}

// dbCollector reads the database gauges at scrape time: three GROUP BY
// counts and the queue.
type dbCollector struct {
	cfg  Config
	help map[string]string
}

func (c *dbCollector) desc(name string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, c.help[name], labels, nil)
}

// Describe sends nothing: the collector is unchecked, its label values
// (states, label sets) are only known when it collects.
func (c *dbCollector) Describe(chan<- *prometheus.Desc) {}

func (c *dbCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
	defer cancel()
	counts, err := c.cfg.Store.CountStates(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc(series.Steps, "state"), err)
	} else {
		c.byState(ch, series.Runs, counts.Runs, runStates())
		c.byState(ch, series.Steps, counts.Steps, stepStates())
		c.byState(ch, series.Agents, counts.Agents, agentStates())
	}
	lines, err := c.cfg.Store.Queue(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc(series.QueueReadySteps, "labels"), err)
		return
	}
	now := c.cfg.Now()
	ready, oldest, agents := c.desc(series.QueueReadySteps, "labels"), c.desc(series.QueueOldestReady, "labels"), c.desc(series.QueueMatchingAgents, "labels")
	for _, l := range lines {
		key := strings.Join(l.Labels, ",")
		age := 0.0
		if !l.OldestReady.IsZero() {
			age = max(now.Sub(l.OldestReady).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(ready, prometheus.GaugeValue, float64(l.Ready), key)
		ch <- prometheus.MustNewConstMetric(oldest, prometheus.GaugeValue, age, key)
		ch <- prometheus.MustNewConstMetric(agents, prometheus.GaugeValue, float64(l.Agents), key)
	}
}

// byState sends one gauge per known state (0 when none), and any state
// the database holds that this build does not know.
func (c *dbCollector) byState(ch chan<- prometheus.Metric, name string, counts map[string]int, known []string) {
	d := c.desc(name, "state")
	seen := map[string]bool{}
	for _, st := range known {
		seen[st] = true
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(counts[st]), st)
	}
	for st, n := range counts {
		if !seen[st] {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(n), st)
		}
	}
}

func runStates() []string  { return names(engine.RunStates()) }
func stepStates() []string { return names(engine.StepStates()) }
func agentStates() []string {
	return names(server.AgentStates())
}

func names[S ~string](list []S) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = string(s)
	}
	return out
}

// slogPrinter logs the exposition's errors (a failed database query).
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) {
	p.log.Error("metrics", slog.String("err", strings.TrimSpace(fmt.Sprintln(v...))))
}
