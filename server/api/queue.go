package api

import (
	"fmt"
	"net/http"
	"sort"
	"strings"

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

// metrics serves the queue and the fleet in the Prometheus text format,
// for autoscalers and dashboards: GET /metrics (admin token).
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	lines, err := s.Queue.Queue(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	agents, err := s.Agents.ListAgents(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	now := s.now()
	var b strings.Builder
	b.WriteString("# HELP baton_queue_ready_steps Ready steps waiting for an agent, by the labels they need.\n# TYPE baton_queue_ready_steps gauge\n")
	for _, l := range lines {
		fmt.Fprintf(&b, "baton_queue_ready_steps{labels=%q} %d\n", strings.Join(l.Labels, ","), l.Ready)
	}
	b.WriteString("# HELP baton_queue_oldest_ready_seconds How long the longest-waiting ready step has waited, by labels.\n# TYPE baton_queue_oldest_ready_seconds gauge\n")
	for _, l := range lines {
		age := 0.0
		if !l.OldestReady.IsZero() {
			age = max(now.Sub(l.OldestReady).Seconds(), 0)
		}
		fmt.Fprintf(&b, "baton_queue_oldest_ready_seconds{labels=%q} %.3f\n", strings.Join(l.Labels, ","), age)
	}
	b.WriteString("# HELP baton_queue_matching_agents Enabled agents that have all the labels.\n# TYPE baton_queue_matching_agents gauge\n")
	for _, l := range lines {
		fmt.Fprintf(&b, "baton_queue_matching_agents{labels=%q} %d\n", strings.Join(l.Labels, ","), l.Agents)
	}
	byState := map[string]int{}
	connected := 0
	for _, a := range agents {
		byState[string(a.State)]++
		if s.Control.Connected(a.ID) {
			connected++
		}
	}
	states := make([]string, 0, len(byState))
	for st := range byState {
		states = append(states, st)
	}
	sort.Strings(states)
	b.WriteString("# HELP baton_agents Agents by the state an admin set.\n# TYPE baton_agents gauge\n")
	for _, st := range states {
		fmt.Fprintf(&b, "baton_agents{state=%q} %d\n", st, byState[st])
	}
	b.WriteString("# HELP baton_agents_connected Agents whose control channel is connected to this server.\n# TYPE baton_agents_connected gauge\n")
	fmt.Fprintf(&b, "baton_agents_connected %d\n", connected)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Write([]byte(b.String()))
}
