package api

import (
	"net/http"

	"github.com/baton-ci/baton/shared/protocol"
)

// getQueue reports the ready steps by the labels they need:
// GET /api/v1/queue.
func (s *Server) getQueue(w http.ResponseWriter, r *http.Request) {
	lines, err := s.Queue.Queue(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	now := s.now()
	out := make([]protocol.QueueLine, len(lines))
	for i, l := range lines {
		labels := l.Labels
		if labels == nil {
			labels = []string{}
		}
		out[i] = protocol.QueueLine{Labels: labels, Ready: l.Ready, Agents: l.Agents}
		if !l.OldestReady.IsZero() {
			out[i].OldestReadySeconds = max(now.Sub(l.OldestReady).Seconds(), 0)
		}
	}
	writeJSON(w, http.StatusOK, out)
}
