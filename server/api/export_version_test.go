package api

// SetMinAgentProtocol makes the server refuse agents older than min (tests
// only; a build's minimum is protocol.MinAgentProtocol).
func (s *Server) SetMinAgentProtocol(min int) { s.minAgentProtocol = min }
