package api

import (
	"log/slog"
	"net/http"

	"github.com/baton-ci/baton/shared/protocol"
)

// agentProtocolOK refuses an agent whose protocol this server does not
// speak: 426 Upgrade Required, with a message that names both versions and
// says what to upgrade. The agent logs it and retries slowly.
func (s *Server) agentProtocolOK(w http.ResponseWriter, r *http.Request, agentID string, sent int) bool {
	min := s.minAgentProtocol
	if min == 0 {
		min = protocol.MinAgentProtocol
	}
	agent := protocol.AgentProtocol(sent)
	err := protocol.IncompatibleAgent(agent, min, protocol.ProtocolVersion)
	if err == nil {
		return true
	}
	s.Logger.WarnContext(r.Context(), "agent refused: incompatible protocol", slog.String("agent_id", agentID),
		slog.Int("agent_protocol", agent), slog.Int("server_protocol", protocol.ProtocolVersion))
	writeJSON(w, http.StatusUpgradeRequired, protocol.Error{Error: err.Error()})
	return false
}
