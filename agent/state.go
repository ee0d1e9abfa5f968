package agent

// State is the agent's lifecycle state, owned by the Run loop.
//
//	Registering ──registered──▶ Ready ──shutdown──▶ Draining ──idle──▶ Stopped
//	     └───────────────shutdown──────────────────────────────────────▲
//
// Ready reserves steps while it has free slots; Draining reserves nothing and
// waits for running steps (up to the eviction time) before stopping.
type State string

const (
	StateRegistering State = "registering"
	StateReady       State = "ready"
	StateDraining    State = "draining"
	StateStopped     State = "stopped"
)

// Event is something that happened to the agent.
type Event string

const (
	EventRegistered Event = "registered"
	EventShutdown   Event = "shutdown"
	EventIdle       Event = "idle" // no step is running
)

// Transition is the pure state machine: the next state after e in s.
// Events that do not apply leave the state unchanged.
func Transition(s State, e Event) State {
	switch {
	case s == StateRegistering && e == EventRegistered:
		return StateReady
	case s == StateRegistering && e == EventShutdown:
		return StateStopped
	case s == StateReady && e == EventShutdown:
		return StateDraining
	case s == StateDraining && e == EventIdle:
		return StateStopped
	}
	return s
}
