package server

import (
	"context"
	"time"
)

// AgentState is what an admin wants of an agent; the agent follows it.
type AgentState string

const (
	AgentEnabled  AgentState = "enabled"  // takes work
	AgentDisabled AgentState = "disabled" // takes no work; keeps its control channel
	AgentDraining AgentState = "draining" // finishes its steps, then exits
	AgentDeleted  AgentState = "deleted"  // cancels its steps, wipes its state, exits; shut out for good
)

// AgentStates lists every agent state.
func AgentStates() []AgentState {
	return []AgentState{AgentEnabled, AgentDisabled, AgentDraining, AgentDeleted}
}

// Connected reports whether an agent in this state may still talk to the
// server (control channel, state, reports); only enabled agents take work.
func (s AgentState) Connected() bool { return s != AgentDeleted }

// Agent is a registered runner host. Its keys are public keys; the private
// halves never leave the agent.
type Agent struct {
	ID         string
	Name       string
	Version    string
	Labels     []string
	State      AgentState
	SigningKey []byte // Ed25519 public key
	HPKEKey    []byte // X25519 public key
	CreatedAt  time.Time
	LastSeen   time.Time
	// Settings override the server's agent defaults for this agent.
	Settings AgentSettings
}

// AgentSettings are an agent's own values for the config the server sends
// it; a zero field keeps the server's default.
type AgentSettings struct {
	PoolSize     int           `json:"pool_size,omitempty"`
	EvictionTime time.Duration `json:"eviction_time,omitempty"`
}

// Limits on what an admin may set.
const (
	MaxPoolSize     = 256
	MaxEvictionTime = 24 * time.Hour
)

// Validate names the first setting out of range.
func (s AgentSettings) Validate() error {
	switch {
	case s.PoolSize < 0 || s.PoolSize > MaxPoolSize:
		return Errorf(EINVALID, "pool_size %d: use 1 to %d (0 keeps the server default)", s.PoolSize, MaxPoolSize)
	case s.EvictionTime < 0 || s.EvictionTime > MaxEvictionTime:
		return Errorf(EINVALID, "eviction_time %s: use up to %s (0 keeps the server default)", s.EvictionTime, MaxEvictionTime)
	}
	return nil
}

// RegistrationToken lets agents register. Only its SHA-256 hash is stored.
type RegistrationToken struct {
	ID          string
	Hash        []byte
	Description string
	CreatedAt   time.Time
	ExpiresAt   *time.Time // nil: never
	MaxUses     int        // 0: unlimited; each new agent is a use
	Uses        int
	RevokedAt   *time.Time
}

// Usable reports why the token cannot register a new agent now, or "".
func (t *RegistrationToken) Usable(now time.Time) string {
	switch {
	case t.RevokedAt != nil:
		return "registration token was revoked"
	case t.ExpiresAt != nil && !now.Before(*t.ExpiresAt):
		return "registration token has expired"
	case t.MaxUses > 0 && t.Uses >= t.MaxUses:
		return "registration token has been used up"
	}
	return ""
}

// AgentStore keeps agents and registration tokens.
type AgentStore interface {
	// CreateRegistrationToken stores a token's hash.
	CreateRegistrationToken(ctx context.Context, t *RegistrationToken) error
	// ListRegistrationTokens returns every token, newest first (no secrets:
	// only hashes are stored).
	ListRegistrationTokens(ctx context.Context) ([]*RegistrationToken, error)
	// RevokeRegistrationToken stops a token from registering agents, or
	// returns ENOTFOUND.
	RevokeRegistrationToken(ctx context.Context, id string) error
	// RegisterAgent checks the token hash and creates the agent, or, when it
	// exists with the same signing key, updates its name and version.
	// A different key for a known id is ECONFLICT; a bad token EUNAUTHORIZED.
	RegisterAgent(ctx context.Context, a *Agent, tokenHash []byte) error
	// FindAgent returns an agent or ENOTFOUND.
	FindAgent(ctx context.Context, id string) (*Agent, error)
	// RecentAgent is FindAgent for the agent's own calls: the record may
	// be a moment old (changes through another replica show within
	// seconds; this replica's at once), and nothing that must be exact
	// relies on it.
	RecentAgent(ctx context.Context, id string) (*Agent, error)
	// ListAgents returns every agent, oldest first.
	ListAgents(ctx context.Context) ([]*Agent, error)
	// RunningSteps returns the steps an agent holds now.
	RunningSteps(ctx context.Context, agentID string) ([]*Step, error)
	// TouchAgent records that the agent was seen now.
	TouchAgent(ctx context.Context, id string, now time.Time) error
	// SetAgentState records what an admin wants of an agent; a deleted
	// agent cannot be brought back (ECONFLICT), an unknown one is ENOTFOUND.
	SetAgentState(ctx context.Context, id string, state AgentState) error
	// SetFleetState sets the state of every agent that is not deleted, not
	// in that state already, and has all of labels (every such agent when
	// labels is empty); it returns their ids.
	SetFleetState(ctx context.Context, labels []string, state AgentState) ([]string, error)
	// SetAgentSettings replaces an agent's settings; ENOTFOUND for an
	// unknown agent, ECONFLICT for a deleted one.
	SetAgentSettings(ctx context.Context, id string, settings AgentSettings) error
}
