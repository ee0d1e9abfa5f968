// Package series names the Prometheus series that baton-server and
// baton-agent export at /metrics: one list that the code registers, the
// documentation describes (docs/metrics.md) and the tests check (the
// end-to-end scrape and the Grafana dashboard in deploy/grafana). A series
// renamed here is renamed everywhere, or a test fails.
package series

// Kind is a Prometheus metric type.
type Kind string

// Metric types.
const (
	Gauge     Kind = "gauge"
	Counter   Kind = "counter"
	Histogram Kind = "histogram"
)

// Scope says where a series' value comes from when several server replicas
// share one database.
type Scope string

// Scopes.
const (
	// Cluster: read from the database at scrape time; every replica reports
	// the same value (do not sum across replicas).
	Cluster Scope = "cluster"
	// Replica: counted in the process; each replica reports its own share
	// (sum across replicas).
	Replica Scope = "replica"
	// Process: the agent's own process.
	Process Scope = "process"
)

// Series is one metric family.
type Series struct {
	Name   string
	Kind   Kind
	Labels []string
	Scope  Scope
	Help   string
}

// Server series.
const (
	Runs                  = "baton_runs"
	Steps                 = "baton_steps"
	QueueReadySteps       = "baton_queue_ready_steps"
	QueueOldestReady      = "baton_queue_oldest_ready_seconds"
	QueueMatchingAgents   = "baton_queue_matching_agents"
	Agents                = "baton_agents"
	AgentsConnected       = "baton_agents_connected"
	ControlConnections    = "baton_control_connections"
	DispatchLatency       = "baton_dispatch_latency_seconds"
	WebhookDeliveries     = "baton_webhook_deliveries_total"
	ServerBuildInfo       = "baton_server_build_info"
	AgentRunningSteps     = "baton_agent_running_steps"
	AgentStepDuration     = "baton_agent_step_duration_seconds"
	AgentReconnects       = "baton_agent_control_reconnects_total"
	AgentReservations     = "baton_agent_reservations_total"
	AgentBuildInfo        = "baton_agent_build_info"
	GoGoroutines          = "go_goroutines"
	ProcessResidentMemory = "process_resident_memory_bytes"
	ProcessCPU            = "process_cpu_seconds_total"
	ProcessStartTime      = "process_start_time_seconds"
)

// Webhook delivery outcomes (label outcome of WebhookDeliveries), as the
// server answered the forge.
const (
	WebhookQueued       = "queued"       // verified and queued for a run (202)
	WebhookIgnored      = "ignored"      // verified; nothing to run (a ping, a deleted branch) (202)
	WebhookDuplicate    = "duplicate"    // a redelivery of a delivery already recorded (200)
	WebhookUnauthorized = "unauthorized" // no secret, or the signature did not match (401)
	WebhookInvalid      = "invalid"      // signed, but not a payload the server understands (400)
	WebhookTooLarge     = "too_large"    // over the body limit (413)
	WebhookError        = "error"        // the server failed to record it (5xx)
)

// WebhookOutcomes lists every outcome.
func WebhookOutcomes() []string {
	return []string{WebhookQueued, WebhookIgnored, WebhookDuplicate, WebhookUnauthorized, WebhookInvalid, WebhookTooLarge, WebhookError}
}

// WebhookProviders lists the providers the server accepts deliveries from
// (label provider of WebhookDeliveries).
func WebhookProviders() []string { return []string{"github", "gitlab", "gitea", "forgejo"} }

// runtime is the Go runtime and process series both binaries export (the
// client library's collectors export more; these are the ones Baton's
// dashboard and tests rely on).
func runtime() []Series {
	return []Series{
		{GoGoroutines, Gauge, nil, Process, "Goroutines that currently exist."},
		{ProcessResidentMemory, Gauge, nil, Process, "Resident memory size in bytes."},
		{ProcessCPU, Counter, nil, Process, "Total user and system CPU time spent in seconds."},
		{ProcessStartTime, Gauge, nil, Process, "Start time of the process since the Unix epoch in seconds."},
	}
}

// Server lists the series baton-server exports.
func Server() []Series {
	return append([]Series{
		{Runs, Gauge, []string{"state"}, Cluster, "Runs by state."},
		{Steps, Gauge, []string{"state"}, Cluster, "Steps by state."},
		{QueueReadySteps, Gauge, []string{"labels"}, Cluster, "Ready steps waiting for an agent, by the labels they need."},
		{QueueOldestReady, Gauge, []string{"labels"}, Cluster, "How long the longest-waiting ready step has waited, by the labels it needs."},
		{QueueMatchingAgents, Gauge, []string{"labels"}, Cluster, "Enabled agents that have all the labels."},
		{Agents, Gauge, []string{"state"}, Cluster, "Agents by the state an admin set."},
		{AgentsConnected, Gauge, nil, Replica, "Agents whose control channel is connected to this server replica."},
		{ControlConnections, Gauge, nil, Replica, "Control-channel (server-sent events) streams open on this server replica."},
		{DispatchLatency, Histogram, nil, Replica, "Seconds from a step becoming ready to its reservation by an agent, observed by the replica that reserved it."},
		{WebhookDeliveries, Counter, []string{"provider", "outcome"}, Replica, "Webhook deliveries received by this replica, by provider and by how they were answered."},
		{ServerBuildInfo, Gauge, []string{"version", "protocol"}, Replica, "Always 1: the server's version and agent protocol version."},
	}, runtime()...)
}

// Agent lists the series baton-agent exports.
func Agent() []Series {
	return append([]Series{
		{AgentRunningSteps, Gauge, nil, Process, "Steps this agent is running now."},
		{AgentStepDuration, Histogram, []string{"result"}, Process, "Seconds a step took on this agent, from reservation to report, by result (succeeded, or the failure reason)."},
		{AgentReconnects, Counter, nil, Process, "Times the agent reconnected its control channel to the server."},
		{AgentReservations, Counter, nil, Process, "Steps the server handed to this agent."},
		{AgentBuildInfo, Gauge, []string{"version", "protocol"}, Process, "Always 1: the agent's version and protocol version."},
	}, runtime()...)
}

// Names returns the metric names a scrape may contain for these series:
// a histogram's are NAME_bucket, NAME_sum and NAME_count.
func Names(list []Series) []string {
	var out []string
	for _, s := range list {
		if s.Kind == Histogram {
			out = append(out, s.Name+"_bucket", s.Name+"_sum", s.Name+"_count")
			continue
		}
		out = append(out, s.Name)
	}
	return out
}

// Buckets are the histogram buckets, in seconds.
var (
	// DispatchBuckets: from a step already waited on by an agent (a few
	// milliseconds) to a queue backed up for an hour.
	DispatchBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}
	// StepBuckets: from a one-second command to a long build.
	StepBuckets = []float64{0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200}
)
