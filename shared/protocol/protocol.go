// Package protocol is the wire contract between the Baton server, its agents
// and API clients: request and response bodies, paths and headers. It holds
// data shapes only; behaviour lives on each side.
package protocol

import (
	"time"

	"github.com/baton-ci/baton/shared/engine"
)

// Paths of the agent API, relative to the server URL.
const (
	PathRegister = "/api/v1/agent/register"
	PathToken    = "/api/v1/agent/token"
	PathReserve  = "/api/v1/agent/reserve"
	// PathStepLog and PathStepComplete take the step id: fmt.Sprintf(PathStepLog, id).
	PathStepLog      = "/api/v1/agent/steps/%s/log"
	PathStepComplete = "/api/v1/agent/steps/%s/complete"
	PathStepLease    = "/api/v1/agent/steps/%s/lease"
	PathStepTrigger  = "/api/v1/agent/steps/%s/trigger"
	// PathStepArtifact names an artifact of the step's run, for PUT, GET
	// and DELETE with ?attempt=N&lease=ID: fmt.Sprintf(PathStepArtifact,
	// stepID, key), the key as it is (see artifact.ValidateKey).
	PathStepArtifact = "/api/v1/agent/steps/%s/artifacts/%s"
)

// HeaderSHA256 carries an artifact's SHA-256 in lowercase hex: a PUT may
// send it to have the server check what it received; a GET answers with it.
const HeaderSHA256 = "X-Baton-Sha256"

// DefaultLeaseLength is how long a reserved step stays the agent's without
// a renewal, unless the server is configured otherwise. Agents renew at a
// third of it.
const DefaultLeaseLength = 60 * time.Second

// TriggerRequest starts a follow-up run from inside a step (cacher
// trigger): the runbook at Runbook (a path in the run's source repository,
// or among the files its run was started with) with Params.
type TriggerRequest struct {
	Attempt int               `json:"attempt"`
	LeaseID string            `json:"lease_id"`
	Runbook string            `json:"runbook"`
	Params  map[string]string `json:"params,omitempty"`
}

// TriggerResponse names the run a trigger started.
type TriggerResponse struct {
	RunID string `json:"run_id"`
}

// MaxReserveWait is the longest a reserve long-poll is held open before the
// server answers 204 No Content.
const MaxReserveWait = 30 * time.Second

// Parking: an agent whose control channel is up may reserve with
// ?park=1. When the server has had nothing for it for a while (its park
// time, shorter than the wait) it answers 204 with HeaderParked: the agent
// is parked, holds no poll, and reserves again when a "work" hint comes on
// its control channel, when the channel reconnects, or after
// ParkedRecheck. Over HTTP/1.1 that answer closes the connection, so an
// idle agent keeps one connection to the server: its control channel.
const (
	HeaderParked  = "X-Baton-Parked"
	ParkedRecheck = MaxReserveWait
)

// Session envelopes: an agent that sends HeaderEnvelope: EnvelopeSession
// on its calls can open payloads sealed in a per-agent session
// (envelope.Sessions), which spares both sides a key exchange and a
// signature per step; a reservation's Envelope says which form it
// carries ("": one HPKE message per payload, envelope.Seal).
const (
	HeaderEnvelope  = "X-Baton-Envelope"
	EnvelopeSession = "session"
)

// Error is the body of every 4xx/5xx answer.
type Error struct {
	Error   string   `json:"error"`
	Details []string `json:"details,omitempty"`
}

// CreateRunRequest starts a run from runbook text.
type CreateRunRequest struct {
	Project string `json:"project"`
	Runbook string `json:"runbook"`
	// Params are the runbook's params: strings, numbers or booleans.
	Params map[string]any `json:"params,omitempty"`
	// Files are the repository files the runbook includes, by path
	// relative to the repository root.
	Files map[string]string `json:"files,omitempty"`
	// Source is the code the run builds, prepared at /job/src in every
	// step; CISource is trusted CI code at /job/ci (see Source).
	Source   *Source `json:"source,omitempty"`
	CISource *Source `json:"ci_source,omitempty"`
}

// Run is a run as the admin API shows it.
type Run struct {
	ID       string         `json:"id"`
	Project  string         `json:"project"`
	Name     string         `json:"name,omitempty"`
	Params   map[string]any `json:"params,omitempty"`
	Source   *Source        `json:"source,omitempty"`
	CISource *Source        `json:"ci_source,omitempty"`
	// Trigger is how the run started: api, retry, webhook or schedule;
	// RetryOf is the run a retry repeats.
	Trigger string `json:"trigger,omitempty"`
	RetryOf string `json:"retry_of,omitempty"`
	// Untrusted: the run builds code from a fork: no secrets, and only
	// agents labelled untrusted run it.
	Untrusted bool `json:"untrusted,omitempty"`
	// CausedBy is the step (run id/step name) that triggered the run.
	CausedBy string `json:"caused_by,omitempty"`
	// Error says why the run failed before any step ran (an invalid
	// runbook from a push).
	Error      string          `json:"error,omitempty"`
	State      engine.RunState `json:"state"`
	CreatedAt  time.Time       `json:"created_at"`
	StartedAt  *time.Time      `json:"started_at"`
	FinishedAt *time.Time      `json:"finished_at"`
	Steps      []Step          `json:"steps"`
}

// Step is a step of a run as the admin API shows it.
type Step struct {
	Name      string           `json:"name"`
	State     engine.StepState `json:"state"`
	DependsOn []string         `json:"depends_on"`
	RunsOn    []string         `json:"runs_on,omitempty"`
	Priority  int              `json:"priority,omitempty"`
	// ApprovalMessage is shown to the person asked to approve the step; the
	// step waits while state is pending and reason awaiting_approval.
	ApprovalMessage string        `json:"approval_message,omitempty"`
	Image           string        `json:"image,omitempty"`
	ExitCode        *int          `json:"exit_code"`
	Reason          engine.Reason `json:"reason,omitempty"` // why it failed
	// Waiting says why a pending or ready step has not started: awaiting
	// approval, dependencies, retry delay, no agent with its labels, pool
	// or project limit, or its place in the queue.
	Waiting    string     `json:"waiting,omitempty"`
	Error      string     `json:"error,omitempty"`
	Attempt    int        `json:"attempt"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	AgentID    string     `json:"agent_id,omitempty"`
	// Outputs are what the latest attempt wrote to $BATON_OUTPUT.
	Outputs map[string]string `json:"outputs,omitempty"`
	// Attempts lists every attempt, oldest first; the fields above are the latest's.
	Attempts []Attempt `json:"attempts"`
}

// Attempt is one try of a step.
type Attempt struct {
	Attempt    int              `json:"attempt"`
	State      engine.StepState `json:"state"` // running, succeeded or failed
	AgentID    string           `json:"agent_id"`
	ExitCode   *int             `json:"exit_code"`
	Reason     engine.Reason    `json:"reason,omitempty"`
	Error      string           `json:"error,omitempty"`
	StartedAt  time.Time        `json:"started_at"`
	FinishedAt *time.Time       `json:"finished_at"`
}

// Project is a project's scheduling settings:
// GET|PUT /api/v1/projects/{project}.
type Project struct {
	Name string `json:"name,omitempty"` // from the path
	// MaxRunning is how many of its steps may run at once; 0: no limit.
	MaxRunning int `json:"max_running"`
	// Weight is its share of the fleet against other projects (default 1).
	Weight int `json:"weight"`
	// Repository is where webhooks read the runbook from.
	Repository *Repository `json:"repository,omitempty"`
	// NotifyURL receives a signed POST for every run and step state
	// change (sign with PUT .../notify-secret).
	NotifyURL string `json:"notify_url,omitempty"`
}

// Schedule starts a project's runbook on a cron schedule:
// PUT /api/v1/projects/{project}/schedules/{name}.
type Schedule struct {
	Name string `json:"name,omitempty"` // from the path
	// Cron is a 5-field expression (minute hour day-of-month month
	// day-of-week) or a descriptor: @hourly, @daily, @weekly, @every 30m.
	Cron string `json:"cron"`
	// Timezone is an IANA name (default UTC) the expression is read in.
	Timezone string `json:"timezone,omitempty"`
	// Branch runs the runbook.yml of that branch of the project's
	// repository, building its tip; or Runbook gives the runbook text.
	Branch    string         `json:"branch,omitempty"`
	Runbook   string         `json:"runbook,omitempty"`
	Params    map[string]any `json:"params,omitempty"`
	NextAt    *time.Time     `json:"next_at,omitempty"`
	LastRunID string         `json:"last_run_id,omitempty"`
}

// Decision is the optional body of an approve or reject.
type Decision struct {
	Comment string `json:"comment,omitempty"`
}

// AuditEvent is who did what to a run: GET /api/v1/runs/{id}/audit.
type AuditEvent struct {
	At      time.Time `json:"at"`
	Actor   string    `json:"actor"`
	Action  string    `json:"action"` // approve, reject, cancel, retry, resume, trust, or "METHOD PATH"
	RunID   string    `json:"run_id,omitempty"`
	Step    string    `json:"step,omitempty"`
	Comment string    `json:"comment,omitempty"`
}

// QueueLine is the ready steps needing one set of labels:
// GET /api/v1/queue.
type QueueLine struct {
	Labels []string `json:"labels"`
	Ready  int      `json:"ready"`
	// OldestReadySeconds is how long the longest-waiting of them has been
	// ready.
	OldestReadySeconds float64 `json:"oldest_ready_seconds"`
	// Agents is how many enabled agents have all the labels.
	Agents int `json:"agents"`
}

// Repository is a project's git repository.
type Repository struct {
	URL string `json:"url"`
	// DefaultBranch (default main) holds the trusted runbook and CI code
	// for pull requests from forks.
	DefaultBranch string `json:"default_branch,omitempty"`
	// Credentials, for a private repository, name the project secrets
	// it is fetched with; nil: the repository is public.
	Credentials *RepoCredentials `json:"credentials,omitempty"`
}

// RepoCredentials say how a private repository is fetched: over HTTPS with
// Username and the token or password in the project secret PasswordSecret,
// or over SSH (ssh:// and user@host:path URLs) with the private key in the
// project secret SSHKeySecret, checking the host against KnownHosts. The
// values stay in the secrets store: these are only names.
type RepoCredentials struct {
	Username       string `json:"username,omitempty"`
	PasswordSecret string `json:"password_secret,omitempty"`
	SSHKeySecret   string `json:"ssh_key_secret,omitempty"`
	// KnownHosts are known_hosts lines for the repository's host; ""
	// uses the system's known_hosts files. Host keys are always checked.
	KnownHosts string `json:"known_hosts,omitempty"`
}

// GitCredentials are the opened values of a repository's credentials, as
// an agent gets them inside a sealed Assignment (never in a run's view).
type GitCredentials struct {
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// SSHKey is a private key in OpenSSH or PEM form, without passphrase.
	SSHKey     string `json:"ssh_key,omitempty"`
	KnownHosts string `json:"known_hosts,omitempty"`
}

// Agent is an agent as the admin API shows it.
type Agent struct {
	ID      string   `json:"id"`
	Name    string   `json:"name"`
	Version string   `json:"version,omitempty"`
	Labels  []string `json:"labels"`
	State   string   `json:"state"`
	// Connected tells whether its control channel is open now.
	Connected bool `json:"connected"`
	// Config is what the agent is told: the server's defaults with the
	// agent's own settings applied.
	Config AgentConfig `json:"config"`
	// Settings are the admin's values for this agent (PUT .../config).
	Settings AgentSettings `json:"settings"`
	// Running lists the steps it holds (single-agent view only).
	Running   []RunningStep `json:"running,omitempty"`
	CreatedAt time.Time     `json:"created_at"`
	LastSeen  time.Time     `json:"last_seen"`
}

// RunningStep is a step an agent holds.
type RunningStep struct {
	RunID     string     `json:"run_id"`
	Step      string     `json:"step"`
	Attempt   int        `json:"attempt"`
	StartedAt *time.Time `json:"started_at"`
}

// RegistrationToken is returned once, when an admin creates it; only its hash
// is stored.
type RegistrationToken struct {
	ID          string     `json:"id"`
	Token       string     `json:"token,omitempty"` // only in the answer that creates it
	Description string     `json:"description,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   *time.Time `json:"expires_at"`
	MaxUses     int        `json:"max_uses"` // 0: unlimited
	Uses        int        `json:"uses"`
	Revoked     bool       `json:"revoked"`
}

// CreateRegistrationTokenRequest is the optional body of a token request.
type CreateRegistrationTokenRequest struct {
	Description string `json:"description,omitempty"`
	// ExpiresIn is a Go duration such as 24h; empty: never.
	ExpiresIn string `json:"expires_in,omitempty"`
	// MaxUses is how many new agents may register with it; 0: unlimited.
	MaxUses int `json:"max_uses,omitempty"`
}

// RegisterRequest is sent by an agent on every start. The first one creates
// the agent; later ones must carry the same keys.
type RegisterRequest struct {
	Token      string   `json:"token"`
	AgentID    string   `json:"agent_id"`
	Name       string   `json:"name"`
	Version    string   `json:"version"`
	Labels     []string `json:"labels,omitempty"` // NAME or NAME=VALUE; steps' runs_on match them
	SigningKey []byte   `json:"signing_key"`      // Ed25519 public key
	HPKEKey    []byte   `json:"hpke_key"`         // X25519 public key for sealed payloads
	// Protocol is the agent API version the agent speaks (ProtocolVersion);
	// absent (0) is version 1, from agents built before it was sent.
	Protocol int `json:"protocol,omitempty"`
}

// RegisterResponse carries the agent's configuration from the server.
type RegisterResponse struct {
	AgentID string      `json:"agent_id"`
	Config  AgentConfig `json:"config"`
	// ServerKey is the server's Ed25519 public key: it signs reservations.
	ServerKey []byte `json:"server_key"`
}

// AgentConfig is set by the server.
type AgentConfig struct {
	// PoolSize is how many steps the agent runs at once.
	PoolSize int `json:"pool_size"`
	// EvictionTime is how long a draining agent lets running steps finish.
	EvictionTime time.Duration `json:"eviction_time"`
	// PingInterval is how often the server pings the control channel; an
	// agent that hears nothing for three intervals restarts it.
	PingInterval time.Duration `json:"ping_interval"`
	// LeaseLength is how long a reserved step stays the agent's without a
	// renewal; the agent renews every third of it.
	LeaseLength time.Duration `json:"lease_length"`
	// Features are the optional parts of the agent API this server takes
	// (FeatureCompleteLog, ...).
	Features []string `json:"features,omitempty"`
}

// Has reports whether the server announced feature f.
func (c AgentConfig) Has(f string) bool {
	for _, g := range c.Features {
		if g == f {
			return true
		}
	}
	return false
}

// AgentSettings are an admin's values for one agent's config; zero or
// absent keeps the server's default. PUT /api/v1/agents/{id}/config.
type AgentSettings struct {
	PoolSize int `json:"pool_size,omitempty"`
	// EvictionTime is a Go duration such as 10m.
	EvictionTime string `json:"eviction_time,omitempty"`
}

// FleetCommand selects the agents of a fleet command:
// POST /api/v1/fleet/{enable|disable|drain}. Exactly one of Labels (agents
// that have all of them) and All must be given.
type FleetCommand struct {
	Labels []string `json:"labels,omitempty"`
	All    bool     `json:"all,omitempty"`
}

// FleetResult is the answer to a fleet command: the agents whose state
// changed (those already in it are left alone).
type FleetResult struct {
	State  string   `json:"state"`
	Agents []string `json:"agents"`
}

// LeaseRequest renews the lease on a running step:
// POST /api/v1/agent/steps/{id}/lease.
type LeaseRequest struct {
	Attempt int    `json:"attempt"`
	LeaseID string `json:"lease_id"`
}

// Lease answers a renewal.
type Lease struct {
	ExpiresAt time.Time `json:"expires_at"`
	// Cancel tells the agent to stop the step: its run was cancelled.
	Cancel bool `json:"cancel,omitempty"`
}

// Paths of the control channel and of the state the agent follows.
const (
	PathEvents     = "/api/v1/agent/events"
	PathAgentState = "/api/v1/agent/state"
)

// AgentState is what the server wants of an agent: enabled, disabled,
// draining or deleted, with its current config. The control channel only
// hints that it changed.
type AgentState struct {
	State  string      `json:"state"`
	Config AgentConfig `json:"config"`
}

// TokenRequest proves possession of the agent's signing key to obtain a
// short-lived access token. Signature is Ed25519 over TokenMessage.
type TokenRequest struct {
	AgentID   string `json:"agent_id"`
	Timestamp int64  `json:"timestamp"` // Unix milliseconds
	Signature []byte `json:"signature"`
	// Protocol is as in RegisterRequest.
	Protocol int `json:"protocol,omitempty"`
}

// TokenMessage is the byte string an agent signs in a TokenRequest.
func TokenMessage(agentID string, timestamp int64) []byte {
	return []byte("baton-agent-token/v1\n" + agentID + "\n" + time.UnixMilli(timestamp).UTC().Format(time.RFC3339Nano))
}

// TokenResponse is an access token for the agent API.
type TokenResponse struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Reservation answers a reserve poll: which step the agent now holds, and
// its Assignment as JSON signed by the server and sealed to the agent's key
// (package envelope, bound to agent, step and attempt).
type Reservation struct {
	StepID  string `json:"step_id"`
	RunID   string `json:"run_id"`
	Attempt int    `json:"attempt"`
	// LeaseID must accompany every call about the step (renewals, log,
	// result); the assignment inside carries it too.
	LeaseID string `json:"lease_id"`
	Sealed  []byte `json:"sealed"`
	// Envelope is the form of Sealed: "" (envelope.Seal) or
	// EnvelopeSession, only for an agent that accepts it.
	Envelope string `json:"envelope,omitempty"`
}

// Assignment is a reserved step: everything an agent needs to run it.
type Assignment struct {
	StepID   string            `json:"step_id"`
	RunID    string            `json:"run_id"`
	Project  string            `json:"project"`
	StepName string            `json:"step_name"`
	Attempt  int               `json:"attempt"`
	LeaseID  string            `json:"lease_id"`
	Image    string            `json:"image,omitempty"`   // empty: the agent's default image
	Command  string            `json:"command,omitempty"` // run with sh -c
	Args     []string          `json:"args,omitempty"`    // or run as is (exec form)
	Env      map[string]string `json:"env,omitempty"`
	// Secrets are project secrets, also given as environment variables;
	// the agent masks their values in the step's output.
	Secrets map[string]string `json:"secrets,omitempty"`
	// Timeout is how long the step may run (nanoseconds on the wire).
	Timeout time.Duration `json:"timeout"`
	// Memory (bytes) and NanoCPUs are the runbook's limits; 0: the
	// agent's default. The agent caps them at its maximums.
	Memory   int64 `json:"memory,omitempty"`
	NanoCPUs int64 `json:"nano_cpus,omitempty"`
	// Source and CISource are prepared before the step runs, at /job/src
	// and /job/ci.
	Source   *Source `json:"source,omitempty"`
	CISource *Source `json:"ci_source,omitempty"`
	// SourceCredentials and CISourceCredentials fetch a source that is the
	// project's private repository (trusted runs only). The agent passes
	// them to git through its environment and masks them in the log.
	SourceCredentials   *GitCredentials `json:"source_credentials,omitempty"`
	CISourceCredentials *GitCredentials `json:"ci_source_credentials,omitempty"`
}

// Artifact describes an artifact stored for a run (the answer to a PUT).
type Artifact struct {
	Key       string    `json:"key"`
	Size      int64     `json:"size"`
	SHA256    string    `json:"sha256"`
	CreatedAt time.Time `json:"created_at"`
}

// StepResult reports how a step ended. ExitCode is nil when the command never
// ran to an exit (for example the image was missing); Error then says why.
type StepResult struct {
	Attempt  int           `json:"attempt"`
	LeaseID  string        `json:"lease_id"`
	ExitCode *int          `json:"exit_code"`
	Reason   engine.Reason `json:"reason,omitempty"` // set when the step failed
	Error    string        `json:"error,omitempty"`
	// Outputs are the key=value pairs the step wrote to $BATON_OUTPUT.
	Outputs map[string]string `json:"outputs,omitempty"`
	// Log is the last chunk of the step's output, stored with the result
	// (FeatureCompleteLog): one call instead of two for every step.
	Log *LogChunk `json:"log,omitempty"`
	// Next asks the server to reserve the agent's next step in the same
	// call (FeatureCompleteNext); the answer is a CompleteResponse.
	Next bool `json:"next,omitempty"`
}

// LogChunk is output at a byte offset of the step's log, with its line
// times in FormatLineTimes' form (as a log upload's times parameter).
type LogChunk struct {
	Offset int64  `json:"offset"`
	Data   []byte `json:"data"` // base64 in JSON
	Times  string `json:"times,omitempty"`
}

// CompleteResponse answers a completion that asked for the next step: 200
// with Next when one was reserved for the agent; 204 otherwise.
type CompleteResponse struct {
	Next *Reservation `json:"next,omitempty"`
}

// Features a server announces in AgentConfig.Features; an agent uses a
// feature only when its server announced it (an older server refuses
// fields it does not know).
const (
	// FeatureCompleteLog: StepResult.Log is stored with the result.
	FeatureCompleteLog = "complete-log"
	// FeatureCompleteNext: StepResult.Next reserves the next step.
	FeatureCompleteNext = "complete-next"
)

// RunSummary is a run without its steps, as GET /api/v1/runs lists it.
type RunSummary struct {
	ID         string          `json:"id"`
	Project    string          `json:"project"`
	Name       string          `json:"name,omitempty"`
	Trigger    string          `json:"trigger"`
	State      engine.RunState `json:"state"`
	CreatedAt  time.Time       `json:"created_at"`
	StartedAt  *time.Time      `json:"started_at"`
	FinishedAt *time.Time      `json:"finished_at"`
}

// RunList is one page of runs, newest first; More says that older runs
// follow (ask again with offset + limit).
type RunList struct {
	Runs []RunSummary `json:"runs"`
	More bool         `json:"more"`
}
