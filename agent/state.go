package agent

// State is the agent's lifecycle state, owned by the Run loop.
//
//	Registering ──registered──▶ Ready ◀──enable── Disabled
//	                              │  ──disable──▶    │
//	                              │                  │
//	           lost (no pings, server unreachable)   │ lost
//	                              ▼                  ▼
//	                             Idle ──recovered──▶ Ready / Disabled (as the server says)
//
//	Ready, Disabled, Idle ──drain (SIGTERM or admin)──▶ Draining ──no steps──▶ Stopped
//	any live state ──delete──▶ Deleting ──no steps──▶ Stopped (state dir wiped)
//	Registering ──shutdown──▶ Stopped
//
// Only Ready reserves steps. Disabled keeps its control channel so Enable
// can arrive; Idle keeps trying to reach the server; Draining lets running
// steps finish (up to the eviction time); Deleting cancels them.
type State string

const (
	StateRegistering State = "registering"
	StateReady       State = "ready"
	StateDisabled    State = "disabled"
	StateIdle        State = "idle"
	StateDraining    State = "draining"
	StateDeleting    State = "deleting"
	StateStopped     State = "stopped"
)

// States lists every state.
func States() []State {
	return []State{StateRegistering, StateReady, StateDisabled, StateIdle, StateDraining, StateDeleting, StateStopped}
}

// Event is something that happened to the agent.
type Event string

const (
	EventRegistered Event = "registered"
	EventEnable     Event = "enable"   // the server wants it enabled (also: recovered while enabled)
	EventDisable    Event = "disable"  // the server wants it disabled (also: recovered while disabled)
	EventDrain      Event = "drain"    // SIGTERM, or the server wants it drained
	EventDelete     Event = "delete"   // the server deleted it
	EventLost       Event = "lost"     // no pings and the server does not answer
	EventShutdown   Event = "shutdown" // stop before registering
	EventIdle       Event = "idle"     // no step is running
)

// Transition is the pure state machine: the next state after e in s.
// Events that do not apply leave the state unchanged.
func Transition(s State, e Event) State {
	live := s == StateReady || s == StateDisabled || s == StateIdle
	switch {
	case s == StateRegistering && e == EventRegistered:
		return StateReady
	case s == StateRegistering && (e == EventShutdown || e == EventDrain):
		return StateStopped
	case e == EventDelete && (live || s == StateDraining):
		return StateDeleting
	case e == EventDrain && live:
		return StateDraining
	case e == EventEnable && (s == StateDisabled || s == StateIdle):
		return StateReady
	case e == EventDisable && (s == StateReady || s == StateIdle):
		return StateDisabled
	case e == EventLost && (s == StateReady || s == StateDisabled):
		return StateIdle
	case e == EventIdle && (s == StateDraining || s == StateDeleting):
		return StateStopped
	}
	return s
}
