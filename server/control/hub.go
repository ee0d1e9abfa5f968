// Package control is the server's side of the agents' control channel: one
// server-sent-events stream per agent, carrying small hints ("state",
// "ping", "work"). Hints are not commands: an agent that gets one asks the
// API for the truth, and one that misses one (not connected) asks when it
// reconnects.
//
// Agents read the stream with github.com/r3labs/sse/v2; the server side is
// ours, because r3labs' server kept three goroutines, a buffered channel
// and a connection's buffers alive per agent, most of an idle fleet's
// memory. Here an HTTP/1.x stream is hijacked and kept as a bare
// connection with no goroutine: a hint is written by a goroutine that
// lives only while it writes, under a write deadline, so a stalled agent
// holds only its own hints. An HTTP/2 stream (h2c) cannot be hijacked; its
// handler stays and writes. Do not put a server WriteTimeout or a timeout
// middleware on this route.
package control

import (
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
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
	EventWork    = "work"    // a step may be ready for a parked agent: reserve now
	EventPing    = "ping"    // the channel is alive
)

// maxPending bounds the hints queued for one stream; identical hints
// queued together are sent once.
const maxPending = 32

// Hub serves agents' control streams and publishes hints to them.
type Hub struct {
	writeTimeout time.Duration
	log          *slog.Logger

	mu        sync.Mutex
	streams   map[string]map[*stream]struct{} // agent id -> open streams
	closed    bool
	broadcast func(agentIDs []string, kind string)
}

// New returns a Hub. writeTimeout bounds every write to an agent.
func New(writeTimeout time.Duration, log *slog.Logger) *Hub {
	return &Hub{writeTimeout: writeTimeout, log: log, streams: map[string]map[*stream]struct{}{}}
}

// Connected reports whether the agent has an open control stream. A
// taken-over stream whose agent hung up is dropped now rather than at the
// next ping round: a poll is parked only where a hint can reach its agent.
func (h *Hub) Connected(agentID string) bool {
	open := false
	for _, st := range h.streamsOf(agentID) {
		if st.conn != nil && hungUp(st.conn) {
			h.end(st, errHungUp)
			continue
		}
		open = true
	}
	return open
}

// Streams is how many control streams are open on this replica.
func (h *Hub) Streams() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, s := range h.streams {
		n += len(s)
	}
	return n
}

// ConnectedAgents is how many agents have an open control stream here.
func (h *Hub) ConnectedAgents() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.streams)
}

// Serve opens the agent's control stream. Over HTTP/1.x it takes the
// connection over and returns at once; the stream lives on until the agent
// hangs up, a write fails, or the Hub closes. Over HTTP/2 it streams until
// the agent hangs up.
func (h *Hub) Serve(w http.ResponseWriter, r *http.Request, agentID string) {
	st := &stream{h: h, agentID: agentID, opened: time.Now(), done: make(chan struct{})}
	if r.ProtoMajor == 1 {
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			// What the agent may send after its request is never read:
			// the buffered reader and writer are dropped with the handler.
			st.conn = conn
			conn.SetWriteDeadline(time.Now().Add(h.writeTimeout))
			if _, err := conn.Write([]byte(streamHeader)); err != nil {
				conn.Close()
				return
			}
			h.add(st)
			return
		}
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	st.rc = http.NewResponseController(w)
	st.w = w
	st.wake = make(chan struct{}, 1)
	if err := st.flushHeld(); err != nil {
		return
	}
	h.add(st)
	for {
		select {
		case <-r.Context().Done():
			h.end(st, r.Context().Err())
			return
		case <-st.done:
			return
		case <-st.wake:
			if err := st.flushHeld(); err != nil {
				h.end(st, err)
				return
			}
		}
	}
}

// streamHeader answers a hijacked HTTP/1.x stream request: the body is the
// event stream and ends when the connection closes.
const streamHeader = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n" +
	"X-Accel-Buffering: no\r\nConnection: close\r\n\r\n"

func (h *Hub) add(st *stream) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		st.close()
		return
	}
	set := h.streams[st.agentID]
	if set == nil {
		set = map[*stream]struct{}{}
		h.streams[st.agentID] = set
	}
	set[st] = struct{}{}
	h.mu.Unlock()
}

// end removes a stream and closes it; err says why (nil: the hub closed).
func (h *Hub) end(st *stream, err error) {
	h.mu.Lock()
	set := h.streams[st.agentID]
	_, ok := set[st]
	delete(set, st)
	if len(set) == 0 {
		delete(h.streams, st.agentID)
	}
	h.mu.Unlock()
	if !ok {
		return
	}
	st.close()
	h.log.Info("control channel closed", slog.String("agent_id", st.agentID),
		slog.Duration("after", time.Since(st.opened).Round(time.Millisecond)), slog.Any("err", err))
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
func (h *Hub) Deliver(agentID, kind string) { h.TryDeliver(agentID, kind) }

// TryDeliver queues a hint on the agent's streams here, and reports
// whether any took it. It never waits for the write.
func (h *Hub) TryDeliver(agentID, kind string) bool {
	sent := false
	for _, st := range h.streamsOf(agentID) {
		if st.send(kind) {
			sent = true
		}
	}
	return sent
}

// Ping sends a ping to every connected agent every interval until stop is
// closed; agents restart their channel when pings stop. Each round also
// drops the hijacked streams whose agents have hung up.
func (h *Hub) Ping(interval time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		for _, st := range h.all() {
			if st.conn != nil && hungUp(st.conn) {
				h.end(st, errHungUp)
				continue
			}
			st.send(EventPing)
		}
	}
}

// streamsOf lists the agent's open streams.
func (h *Hub) streamsOf(agentID string) []*stream {
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.streams[agentID]
	out := make([]*stream, 0, len(set))
	for st := range set {
		out = append(out, st)
	}
	return out
}

func (h *Hub) all() []*stream {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*stream, 0, len(h.streams))
	for _, set := range h.streams {
		for st := range set {
			out = append(out, st)
		}
	}
	return out
}

// Close ends every stream.
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	for _, st := range h.all() {
		h.end(st, nil)
	}
}

// stream is one open control stream: a hijacked connection (conn), or an
// HTTP/2 response its handler holds (w, rc, wake).
type stream struct {
	h       *Hub
	agentID string
	opened  time.Time
	done    chan struct{} // closed when the stream ends

	conn net.Conn

	w    http.ResponseWriter
	rc   *http.ResponseController
	wake chan struct{}

	mu      sync.Mutex
	pending []string
	writing bool // a goroutine writes pending to conn
	ended   bool
	dropped bool // a hint was dropped (said once)
}

// send queues a hint; false if the stream has ended.
func (st *stream) send(kind string) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.ended {
		return false
	}
	for _, k := range st.pending {
		if k == kind {
			return true
		}
	}
	if len(st.pending) >= maxPending {
		if !st.dropped {
			st.dropped = true
			st.h.log.Warn("control event dropped: agent stream full", slog.String("agent_id", st.agentID), slog.String("event", kind))
		}
		return true
	}
	st.pending = append(st.pending, kind)
	switch {
	case st.conn == nil:
		select {
		case st.wake <- struct{}{}:
		default:
		}
	case !st.writing:
		st.writing = true
		go st.writeConn()
	}
	return true
}

// take returns the queued hints as one chunk of the event stream.
func (st *stream) take() []byte {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.ended || len(st.pending) == 0 {
		st.writing = false
		return nil
	}
	var b []byte
	for _, k := range st.pending {
		b = append(b, "event: "...)
		b = append(b, k...)
		b = append(b, "\ndata: "...)
		b = append(b, k...)
		b = append(b, "\n\n"...)
	}
	st.pending = st.pending[:0]
	return b
}

// writeConn writes what is queued to a hijacked connection, then exits.
func (st *stream) writeConn() {
	for {
		b := st.take()
		if b == nil {
			return
		}
		st.conn.SetWriteDeadline(time.Now().Add(st.h.writeTimeout))
		if _, err := st.conn.Write(b); err != nil {
			st.mu.Lock()
			st.writing = false
			st.mu.Unlock()
			st.h.end(st, err)
			return
		}
	}
}

// flushHeld writes what is queued to an HTTP/2 response.
func (st *stream) flushHeld() error {
	st.rc.SetWriteDeadline(time.Now().Add(st.h.writeTimeout))
	if b := st.take(); b != nil {
		if _, err := st.w.Write(b); err != nil {
			return err
		}
	}
	return st.rc.Flush()
}

// close ends the stream: its connection is closed, or its handler returns.
func (st *stream) close() {
	st.mu.Lock()
	if st.ended {
		st.mu.Unlock()
		return
	}
	st.ended = true
	st.pending = nil
	st.mu.Unlock()
	close(st.done)
	if st.conn != nil {
		st.conn.Close()
	}
}
