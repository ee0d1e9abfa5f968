package agent

import (
	"crypto/sha256"
	"net/http"
	"sync/atomic"
)

// Health serves the agent's probes for Kubernetes and operators:
//
//	/livez   200 while the process serves HTTP
//	/readyz  200 while the agent is registered, taking work (state ready) and
//	         its control channel is up
//	/metrics the agent's Prometheus series, with a bearer token, once
//	         ServeMetrics was called; 404 otherwise
//
// The probes answer with the state in plain text, without authentication
// (they say only the state).
type Health struct {
	state   atomic.Value // State
	control atomic.Bool
	metrics http.Handler
}

// ServeMetrics serves m at /metrics to callers that send
// "Authorization: Bearer <token>". Call it before serving.
func (h *Health) ServeMetrics(m *Metrics, token string) {
	h.metrics = &metricsGate{next: m.Handler(), hash: sha256.Sum256([]byte(token))}
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
	if r.URL.Path == "/metrics" {
		if h.metrics == nil {
			http.Error(w, "metrics are off: start the agent with --metrics-token (or BATON_METRICS_TOKEN[_FILE])", http.StatusNotFound)
			return
		}
		h.metrics.ServeHTTP(w, r)
		return
	}
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
