// Package control is the server's side of the agents' control channel: one
// server-sent-events stream per agent (github.com/r3labs/sse/v2), carrying
// small hints ("state", "ping"). Hints are not commands: an agent that gets
// one asks the API for the truth, and one that misses one (not connected)
// asks when it reconnects.
//
// r3labs/sse (v2.10.0, unmaintained since 2023) is used with settings that
// avoid its known pitfalls: no replay (AutoReplay off: its log never shrinks,
// and history lives in the database), TryPublish and one stream per agent so
// a stalled agent never blocks the others, and a write deadline on every
// write so a stalled connection is dropped. Do not put a server WriteTimeout
// or a timeout middleware on this route.
package control

import (
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/r3labs/sse/v2"
)

// Event kinds on the control channel.
const (
	EventState   = "state"   // look at what the server wants: GET /api/v1/agent/state
	EventEnable  = "enable"  // an admin enabled the agent (read the state)
	EventDisable = "disable" // an admin disabled the agent (read the state)
	EventDrain   = "drain"   // an admin asked the agent to drain (read the state)
	EventDelete  = "delete"  // an admin deleted the agent (read the state)
	EventConfig  = "config"  // the agent's config changed (read the state)
	EventCancel  = "cancel"  // a step it runs was cancelled: renew leases now
	EventPing    = "ping"    // the channel is alive
)

// Hub serves agents' control streams and publishes hints to them.
type Hub struct {
	sse          *sse.Server
	writeTimeout time.Duration
	log          *slog.Logger

	mu        sync.Mutex
	connected map[string]int // agent id -> open streams
	broadcast func(agentIDs []string, kind string)
}

// New returns a Hub. writeTimeout bounds every write to an agent.
func New(writeTimeout time.Duration, log *slog.Logger) *Hub {
	h := &Hub{writeTimeout: writeTimeout, log: log, connected: map[string]int{}}
	h.sse = sse.NewWithCallback(h.subscribed, h.unsubscribed)
	h.sse.AutoReplay = false
	h.sse.AutoStream = true
	h.sse.BufferSize = 16
	return h
}

func (h *Hub) subscribed(id string, _ *sse.Subscriber) {
	h.mu.Lock()
	h.connected[id]++
	h.mu.Unlock()
}

func (h *Hub) unsubscribed(id string, _ *sse.Subscriber) {
	h.mu.Lock()
	if h.connected[id]--; h.connected[id] <= 0 {
		delete(h.connected, id)
	}
	h.mu.Unlock()
}

// Connected reports whether the agent has an open control stream.
func (h *Hub) Connected(agentID string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.connected[agentID] > 0
}

// Streams is how many control streams are open on this replica.
func (h *Hub) Streams() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, c := range h.connected {
		n += c
	}
	return n
}

// ConnectedAgents is how many agents have an open control stream here.
func (h *Hub) ConnectedAgents() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.connected)
}

// Serve streams the agent's control events until it hangs up.
func (h *Hub) Serve(w http.ResponseWriter, r *http.Request, agentID string) {
	q := r.URL.Query()
	q.Set("stream", agentID) // r3labs picks the stream by this query parameter only
	r.URL.RawQuery = q.Encode()
	r.Header.Del("Last-Event-ID") // nothing is replayed
	h.sse.ServeHTTP(&deadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w), timeout: h.writeTimeout}, r)
}

// SetBroadcast makes every Notify also call f, which passes the hint to the
// other server replicas, where the agent may be connected (PostgreSQL
// NOTIFY); they Deliver it. f must not block.
func (h *Hub) SetBroadcast(f func(agentIDs []string, kind string)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.broadcast = f
}

// Notify sends a hint to an agent, here if it is connected and through the
// other replicas; a missed hint is harmless, the agent asks for its state
// whenever it connects.
func (h *Hub) Notify(agentID, kind string) { h.NotifyMany([]string{agentID}, kind) }

// NotifyMany sends one hint to many agents (a fleet command): here to
// those connected, and to the others through the other replicas in as few
// messages as fit.
func (h *Hub) NotifyMany(agentIDs []string, kind string) {
	h.mu.Lock()
	broadcast := h.broadcast
	h.mu.Unlock()
	if broadcast != nil && len(agentIDs) > 0 {
		broadcast(agentIDs, kind)
	}
	for _, id := range agentIDs {
		h.Deliver(id, kind)
	}
}

// Deliver sends a hint to an agent if it is connected to this replica.
func (h *Hub) Deliver(agentID, kind string) {
	if !h.Connected(agentID) {
		return
	}
	if !h.sse.TryPublish(agentID, &sse.Event{Event: []byte(kind), Data: []byte(kind)}) {
		h.log.Warn("control event dropped: agent stream full", slog.String("agent_id", agentID), slog.String("event", kind))
	}
}

// Ping sends a ping to every connected agent every interval until stop is
// closed; agents restart their channel when pings stop.
func (h *Hub) Ping(interval time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		h.mu.Lock()
		ids := make([]string, 0, len(h.connected))
		for id := range h.connected {
			ids = append(ids, id)
		}
		h.mu.Unlock()
		for _, id := range ids {
			h.sse.TryPublish(id, &sse.Event{Event: []byte(EventPing), Data: []byte(EventPing)})
		}
	}
}

// Close ends every stream.
func (h *Hub) Close() { h.sse.Close() }

// deadlineWriter sets a write deadline before every write and flush, so a
// connection that stops reading is dropped instead of stalling its stream.
type deadlineWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	d.rc.SetWriteDeadline(time.Now().Add(d.timeout))
	return d.ResponseWriter.Write(p)
}

func (d *deadlineWriter) Flush() {
	d.rc.SetWriteDeadline(time.Now().Add(d.timeout))
	d.rc.Flush()
}
