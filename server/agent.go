package server

import (
	"context"
	"time"
)

// AgentState is the server's view of an agent.
type AgentState string

const (
	AgentEnabled  AgentState = "enabled"
	AgentDisabled AgentState = "disabled"
)

// AgentStates lists every agent state.
func AgentStates() []AgentState { return []AgentState{AgentEnabled, AgentDisabled} }

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
	// ListAgents returns every agent, oldest first.
	ListAgents(ctx context.Context) ([]*Agent, error)
	// TouchAgent records that the agent was seen now.
	TouchAgent(ctx context.Context, id string, now time.Time) error
}
