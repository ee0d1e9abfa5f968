package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
)

// The UI's live updates: server-sent events from /ui/events/fleet and
// /ui/events/runs/{id}. The database is the truth: each stream re-reads
// its page's state every second (or sooner when the server's wake signal
// fires) and sends an "update" event with the compact snapshot only when
// it changed; a "ping" keeps proxies from closing an idle stream. A stream
// ends after streamLifetime so the browser reconnects and its session is
// checked again.

const (
	streamPoll     = time.Second
	streamPing     = 15 * time.Second
	streamLifetime = 10 * time.Minute
	streamWrite    = 10 * time.Second
)

type fleetAgentSnap struct {
	ID        string `json:"id"`
	Status    string `json:"status"`
	Connected bool   `json:"connected"`
	LastSeen  string `json:"last_seen"`
	Running   int    `json:"running"`
	Pool      int    `json:"pool"`
}

func (s *Server) fleetEvents(w http.ResponseWriter, r *http.Request) {
	s.stream(w, r, func() (any, error) {
		agents, err := s.fleet(r)
		if err != nil {
			return nil, err
		}
		out := make([]fleetAgentSnap, len(agents))
		for i, a := range agents {
			out[i] = fleetAgentSnap{ID: a.ID, Status: a.Status, Connected: a.Connected, LastSeen: a.LastSeenAge,
				Running: len(a.Running), Pool: a.Pool}
		}
		return map[string]any{"agents": out}, nil
	})
}

type stepSnap struct {
	Name     string `json:"name"`
	State    string `json:"state"`
	Reason   string `json:"reason,omitempty"`
	Waiting  string `json:"waiting,omitempty"`
	Duration string `json:"duration,omitempty"`
	Attempt  int    `json:"attempt"`
}

func (s *Server) runEvents(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	s.stream(w, r, func() (any, error) {
		run, err := s.Runs.FindRun(r.Context(), id)
		if err != nil {
			return nil, err
		}
		steps := make([]stepSnap, 0, len(run.Steps))
		for _, st := range s.stepRows(run) {
			steps = append(steps, stepSnap{Name: st.Name, State: st.State, Reason: st.Reason, Waiting: st.Waiting,
				Duration: st.Duration, Attempt: st.Attempt})
		}
		return map[string]any{"state": run.State, "steps": steps}, nil
	})
}

// stream serves one SSE connection fed by snap.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, snap func() (any, error)) {
	rc := http.NewResponseController(w)
	securityHeaders(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(event string, data []byte) bool {
		rc.SetWriteDeadline(time.Now().Add(streamWrite))
		var b bytes.Buffer
		b.WriteString("event: " + event + "\ndata: ")
		b.Write(data)
		b.WriteString("\n\n")
		if _, err := w.Write(b.Bytes()); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send("ping", []byte("{}")) {
		return
	}
	poll := time.NewTicker(streamPoll)
	defer poll.Stop()
	ping := time.NewTicker(streamPing)
	defer ping.Stop()
	end := time.After(streamLifetime)
	var last []byte
	for {
		v, err := snap()
		if err != nil {
			send("failure", []byte(`{"error":"`+jsonString(errorMessage(err))+`"}`))
			return
		}
		data, _ := json.Marshal(v)
		if !bytes.Equal(data, last) {
			if !send("update", data) {
				return
			}
			last = data
		}
		select {
		case <-r.Context().Done():
			return
		case <-end:
			return
		case <-ping.C:
			if !send("ping", []byte("{}")) {
				return
			}
		case <-poll.C:
		}
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}
