package agent

import (
	"net/http"
	"sync/atomic"
)

// Health serves the agent's probes for Kubernetes and operators:
//
//	/livez   200 while the process serves HTTP
//	/readyz  200 while the agent is registered, taking work (state ready) and
//	         its control channel is up
//
// Both answer with the state in plain text.
type Health struct {
	state   atomic.Value // State
	control atomic.Bool
}

// NewHealth returns probes that report Registering until Set is called.
func NewHealth() *Health {
	h := &Health{}
	h.state.Store(StateRegistering)
	return h
}

// Set records the agent's state; pass it as Agent.OnState.
func (h *Health) Set(s State) { h.state.Store(s) }

// SetControl records whether the control channel is up; pass it as
// Agent.OnControl.
func (h *Health) SetControl(up bool) { h.control.Store(up) }

// State returns the last state set.
func (h *Health) State() State { return h.state.Load().(State) }

// ServeHTTP answers the probes.
func (h *Health) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	state := h.State()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	switch r.URL.Path {
	case "/livez":
	case "/readyz":
		if state != StateReady || !h.control.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			if state == StateReady {
				state = "ready, control channel down"
			}
		}
	default:
		http.NotFound(w, r)
		return
	}
	w.Write([]byte(string(state) + "\n"))
}
