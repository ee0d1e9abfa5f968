package protocol

import "fmt"

// ProtocolVersion is the version of the agent API (the paths, bodies and
// their meaning under /api/v1/agent) that this build speaks. It changes
// only when an agent and a server of different versions could no longer
// work together; a release that adds optional fields keeps it.
const ProtocolVersion = 1

// MinAgentProtocol is the oldest agent protocol a server of this build
// accepts. An agent older than it must be upgraded; one newer than
// ProtocolVersion needs a newer server.
const MinAgentProtocol = 1

// AgentProtocol returns the protocol an agent announced: 0 (not sent, an
// agent built before the field existed) is version 1.
func AgentProtocol(sent int) int {
	if sent == 0 {
		return 1
	}
	return sent
}

// IncompatibleAgent says what to do about an agent speaking protocol
// agent to a server that accepts min to current; nil when they are
// compatible. The message names both versions.
func IncompatibleAgent(agent, min, current int) error {
	switch {
	case agent < min:
		return fmt.Errorf("agent protocol %d is too old: this server speaks agent protocol %d (accepts %d to %d); upgrade the agent (baton-agent) to a release that speaks protocol %d",
			agent, current, min, current, current)
	case agent > current:
		return fmt.Errorf("agent protocol %d is newer than this server's: the server speaks agent protocol %d (accepts %d to %d); upgrade the server, or run an agent release that speaks protocol %d",
			agent, current, min, current, current)
	}
	return nil
}
