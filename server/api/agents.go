package api

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/server/control"
	"github.com/baton-ci/baton/shared/protocol"
	"github.com/baton-ci/baton/shared/runbook"
)

const maxAgentNameLength = 100

// register creates an agent, or re-admits a known agent that shows its keys.
func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	var req protocol.RegisterRequest
	if err := decodeJSON(r, 64<<10, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := validateRegistration(&req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if !s.agentProtocolOK(w, r, req.AgentID, req.Protocol) {
		return
	}
	hash := sha256.Sum256([]byte(req.Token))
	agent := &server.Agent{ID: req.AgentID, Name: req.Name, Version: req.Version, Labels: req.Labels,
		SigningKey: req.SigningKey, HPKEKey: req.HPKEKey}
	if err := s.Agents.RegisterAgent(r.Context(), agent, hash[:]); err != nil {
		s.Logger.WarnContext(r.Context(), "agent registration refused", slog.String("agent_id", req.AgentID),
			slog.String("agent_name", req.Name), slog.String("reason", server.ErrorCode(err)))
		s.writeError(w, r, err)
		return
	}
	s.Logger.InfoContext(r.Context(), "agent registered", slog.String("agent_id", agent.ID), slog.String("agent_name", agent.Name),
		slog.String("agent_version", agent.Version), slog.Int("agent_protocol", protocol.AgentProtocol(req.Protocol)))
	s.Control.Notify(agent.ID, control.EventState) // an agent restarting under the same id
	writeJSON(w, http.StatusOK, protocol.RegisterResponse{AgentID: agent.ID, Config: s.configFor(agent),
		ServerKey: s.SigningKey.Public().(ed25519.PublicKey)})
}

func validateRegistration(req *protocol.RegisterRequest) error {
	switch {
	case req.Token == "":
		return server.Errorf(server.EUNAUTHORIZED, "registration token is missing")
	case uuid.Validate(req.AgentID) != nil:
		return server.Errorf(server.EINVALID, "agent_id must be a UUID")
	case req.Name == "" || len(req.Name) > maxAgentNameLength:
		return server.Errorf(server.EINVALID, "name must be 1 to %d characters", maxAgentNameLength)
	case len(req.SigningKey) != ed25519.PublicKeySize:
		return server.Errorf(server.EINVALID, "signing_key must be a %d-byte Ed25519 public key", ed25519.PublicKeySize)
	case len(req.HPKEKey) != 32:
		return server.Errorf(server.EINVALID, "hpke_key must be a 32-byte X25519 public key")
	case len(req.Labels) > 2*runbook.MaxLabels:
		return server.Errorf(server.EINVALID, "%d labels; the limit is %d", len(req.Labels), 2*runbook.MaxLabels)
	}
	for _, l := range req.Labels {
		if !runbook.ValidLabel(l) {
			return server.Errorf(server.EINVALID, "label %q: use NAME or NAME=VALUE", l)
		}
	}
	return nil
}

// tokenSkew is how far an agent's signed timestamp may be from the server's clock.
const tokenSkew = 5 * time.Minute

// issueToken trades a signature made with the agent's key for an access token.
func (s *Server) issueToken(w http.ResponseWriter, r *http.Request) {
	var req protocol.TokenRequest
	if err := decodeJSON(r, 4<<10, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if !s.agentProtocolOK(w, r, req.AgentID, req.Protocol) {
		return
	}
	denied := server.Errorf(server.EUNAUTHORIZED, "agent signature is not valid")
	agent, err := s.Agents.FindAgent(r.Context(), req.AgentID)
	if err != nil {
		if server.ErrorCode(err) == server.ENOTFOUND {
			err = denied
		}
		s.writeError(w, r, err)
		return
	}
	// The signature first: an unknown agent and a bad signature look the
	// same to the caller; only the key's holder learns about its clock.
	if !ed25519.Verify(agent.SigningKey, protocol.TokenMessage(agent.ID, req.Timestamp), req.Signature) {
		s.writeError(w, r, denied)
		return
	}
	now := s.now()
	at := time.UnixMilli(req.Timestamp)
	if at.Before(now.Add(-tokenSkew)) || at.After(now.Add(tokenSkew)) {
		s.writeError(w, r, server.Errorf(server.EUNAUTHORIZED, "agent clock is more than %s away from the server's", tokenSkew))
		return
	}
	// A deleted agent still gets a token, good only to learn it was deleted
	// and to report the steps it cancels (see requireAgent).
	token, exp, err := s.issueAgentToken(agent.ID, now)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, protocol.TokenResponse{Token: token, ExpiresAt: exp.UTC()})
}

func (s *Server) listAgents(w http.ResponseWriter, r *http.Request) {
	agents, err := s.Agents.ListAgents(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]protocol.Agent, len(agents))
	for i, a := range agents {
		out[i] = s.agentView(a)
		out[i].Connected = s.Control.Connected(a.ID)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getAgent(w http.ResponseWriter, r *http.Request) {
	a, err := s.Agents.FindAgent(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	v := s.agentView(a)
	v.Connected = s.Control.Connected(a.ID)
	running, err := s.Agents.RunningSteps(r.Context(), a.ID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	for _, st := range running {
		v.Running = append(v.Running, protocol.RunningStep{RunID: st.RunID, Step: st.Name, Attempt: st.Attempt, StartedAt: st.StartedAt})
	}
	writeJSON(w, http.StatusOK, v)
}

// setAgentState records an admin's decision about an agent and hints the
// agent over its control channel to come and read it.
func (s *Server) setAgentState(state server.AgentState) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := chi.URLParam(r, "id")
		if err := s.Agents.SetAgentState(r.Context(), id, state); err != nil {
			s.writeError(w, r, err)
			return
		}
		s.Control.Notify(id, stateEvents[state])
		s.Wake.Notify() // its held reserve polls look at its state again
		s.Logger.InfoContext(r.Context(), "agent state set", slog.String("agent_id", id), slog.String("state", string(state)))
		if state == server.AgentDeleted {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		s.getAgent(w, r)
	}
}

// fleetCommand sets the state of many agents at once, by labels or all of
// them, and hints each: POST /api/v1/fleet/{enable|disable|drain}. One
// statement and one hint per agent, so a fleet of thousands hears it in
// well under a second (docs/performance.md); deleting is one at a time.
func (s *Server) fleetCommand(w http.ResponseWriter, r *http.Request) {
	command := chi.URLParam(r, "command")
	state, ok := fleetStates[command]
	if !ok {
		s.writeError(w, r, server.Errorf(server.ENOTFOUND, "no fleet command %q: use enable, disable or drain", command))
		return
	}
	var req protocol.FleetCommand
	if err := decodeJSON(r, 64<<10, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.All == (len(req.Labels) > 0) {
		s.writeError(w, r, server.Errorf(server.EINVALID, "give either labels (agents that have all of them) or all: true"))
		return
	}
	for _, l := range req.Labels {
		if strings.TrimSpace(l) == "" {
			s.writeError(w, r, server.Errorf(server.EINVALID, "labels must not be empty strings"))
			return
		}
	}
	ids, err := s.Agents.SetFleetState(r.Context(), req.Labels, state)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.Control.NotifyMany(ids, stateEvents[state])
	if len(ids) > 0 {
		s.Wake.Notify() // held reserve polls look at their agent's state again
	}
	s.Logger.InfoContext(r.Context(), "fleet state set", slog.String("state", string(state)),
		slog.Any("labels", req.Labels), slog.Int("agents", len(ids)))
	if ids == nil {
		ids = []string{}
	}
	writeJSON(w, http.StatusOK, protocol.FleetResult{State: string(state), Agents: ids})
}

// fleetStates are the states a fleet command sets, by its name.
var fleetStates = map[string]server.AgentState{"enable": server.AgentEnabled, "disable": server.AgentDisabled, "drain": server.AgentDraining}

// stateEvents names the control hint for each state an admin sets.
var stateEvents = map[server.AgentState]string{
	server.AgentEnabled: control.EventEnable, server.AgentDisabled: control.EventDisable,
	server.AgentDraining: control.EventDrain, server.AgentDeleted: control.EventDelete,
}

// setAgentSettings replaces an agent's own config values and hints the
// agent to read its new config: PUT /api/v1/agents/{id}/config.
func (s *Server) setAgentSettings(w http.ResponseWriter, r *http.Request) {
	var req protocol.AgentSettings
	if err := decodeJSON(r, 4<<10, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	settings := server.AgentSettings{PoolSize: req.PoolSize}
	if req.EvictionTime != "" {
		d, err := time.ParseDuration(req.EvictionTime)
		if err != nil {
			s.writeError(w, r, server.Errorf(server.EINVALID, "eviction_time %q: use a duration such as 10m", req.EvictionTime))
			return
		}
		settings.EvictionTime = d
	}
	id := chi.URLParam(r, "id")
	if err := s.Agents.SetAgentSettings(r.Context(), id, settings); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.Control.Notify(id, control.EventConfig)
	s.Logger.InfoContext(r.Context(), "agent config set", slog.String("agent_id", id),
		slog.Int("pool_size", settings.PoolSize), slog.Duration("eviction_time", settings.EvictionTime))
	s.getAgent(w, r)
}

// serverFeatures are the optional parts of the agent API this server takes.
var serverFeatures = []string{protocol.FeatureCompleteLog, protocol.FeatureCompleteNext}

// configFor is the server's agent config with the agent's settings applied.
func (s *Server) configFor(a *server.Agent) protocol.AgentConfig {
	cfg := s.AgentConfig
	cfg.Features = serverFeatures
	if a.Settings.PoolSize > 0 {
		cfg.PoolSize = a.Settings.PoolSize
	}
	if a.Settings.EvictionTime > 0 {
		cfg.EvictionTime = a.Settings.EvictionTime
	}
	return cfg
}

// events is the agent's control channel (server-sent events).
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	id := agentFrom(r.Context()).ID
	s.Logger.InfoContext(r.Context(), "control channel connected", slog.String("agent_id", id))
	s.Control.Serve(w, r, id) // the hub says when it closes
}

// agentState tells the agent what is wanted of it, and its config. It is
// also how the server hears from an agent that is not reserving.
func (s *Server) agentState(w http.ResponseWriter, r *http.Request) {
	agent := agentFrom(r.Context()) // read afresh by requireAgent for this path
	if err := s.touch(r.Context(), agent); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, protocol.AgentState{State: string(agent.State), Config: s.configFor(agent)})
}

func (s *Server) agentView(a *server.Agent) protocol.Agent {
	labels := a.Labels
	if labels == nil {
		labels = []string{}
	}
	v := protocol.Agent{ID: a.ID, Name: a.Name, Version: a.Version, Labels: labels, State: string(a.State),
		Config: s.configFor(a), Settings: protocol.AgentSettings{PoolSize: a.Settings.PoolSize},
		CreatedAt: a.CreatedAt, LastSeen: a.LastSeen}
	if a.Settings.EvictionTime > 0 {
		v.Settings.EvictionTime = a.Settings.EvictionTime.String()
	}
	return v
}

// DefaultSeenResolution is how stale an agent's last_seen may get.
const DefaultSeenResolution = time.Second

// touch records that the agent was heard from, unless its last_seen (as
// requireAgent just read it) is recent enough already.
func (s *Server) touch(ctx context.Context, agent *server.Agent) error {
	res := s.SeenResolution
	if res == 0 {
		res = DefaultSeenResolution
	}
	now := s.now()
	if now.Sub(agent.LastSeen) < res {
		return nil
	}
	return s.Agents.TouchAgent(ctx, agent.ID, now)
}
