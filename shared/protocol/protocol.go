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
)

// MaxReserveWait is the longest a reserve long-poll is held open before the
// server answers 204 No Content.
const MaxReserveWait = 30 * time.Second

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
}

// Run is a run as the admin API shows it.
type Run struct {
	ID         string          `json:"id"`
	Project    string          `json:"project"`
	Name       string          `json:"name,omitempty"`
	Params     map[string]any  `json:"params,omitempty"`
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
	Error           string        `json:"error,omitempty"`
	Attempt         int           `json:"attempt"`
	StartedAt       *time.Time    `json:"started_at"`
	FinishedAt      *time.Time    `json:"finished_at"`
	AgentID         string        `json:"agent_id,omitempty"`
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

// Agent is an agent as the admin API shows it.
type Agent struct {
	ID      string   `json:"id"`
	Name    string   `json:"name"`
	Version string   `json:"version,omitempty"`
	Labels  []string `json:"labels"`
	State   string   `json:"state"`
	// Connected tells whether its control channel is open now.
	Connected bool `json:"connected"`
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
	Sealed  []byte `json:"sealed"`
}

// Assignment is a reserved step: everything an agent needs to run it.
type Assignment struct {
	StepID   string            `json:"step_id"`
	RunID    string            `json:"run_id"`
	Project  string            `json:"project"`
	StepName string            `json:"step_name"`
	Attempt  int               `json:"attempt"`
	Image    string            `json:"image,omitempty"`   // empty: the agent's default image
	Command  string            `json:"command,omitempty"` // run with sh -c
	Args     []string          `json:"args,omitempty"`    // or run as is (exec form)
	Env      map[string]string `json:"env,omitempty"`
	// Secrets are project secrets, also given as environment variables;
	// the agent masks their values in the step's output.
	Secrets map[string]string `json:"secrets,omitempty"`
	// Timeout is how long the step may run (nanoseconds on the wire).
	Timeout time.Duration `json:"timeout"`
}

// StepResult reports how a step ended. ExitCode is nil when the command never
// ran to an exit (for example the image was missing); Error then says why.
type StepResult struct {
	Attempt  int           `json:"attempt"`
	ExitCode *int          `json:"exit_code"`
	Reason   engine.Reason `json:"reason,omitempty"` // set when the step failed
	Error    string        `json:"error,omitempty"`
	// Outputs are the key=value pairs the step wrote to $BATON_OUTPUT.
	Outputs map[string]string `json:"outputs,omitempty"`
}
