// Package pgnotify carries the server's hints between replicas that share
// one PostgreSQL database, with LISTEN/NOTIFY on one dedicated pgx
// connection: "steps may be Ready" on channel baton_wake, and control hints
// for agents on channel baton_control (payload "<replica> <agent> <kind>").
// Each replica ignores what it sent itself.
//
// Notifications are hints, not messages. PostgreSQL delivers them at
// COMMIT, only to sessions listening at that moment, and folds duplicates
// within a transaction; nothing is kept for a replica that was not
// listening. So after every (re)connect the relay calls OnWake, and waiting
// long-polls rescan the database on their own every few seconds anyway;
// agents ask for their state whenever their control channel comes up.
package pgnotify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The channels, shared by every replica on the database.
const (
	ChannelWake    = "baton_wake"
	ChannelControl = "baton_control"
)

// maxQueued bounds the control hints waiting to be sent; past it new ones
// are dropped (each is only a hint).
const maxQueued = 1024

// maxPayload keeps a notification under PostgreSQL's 8,000-byte limit.
const maxPayload = 7900

// Config is what a Relay needs.
type Config struct {
	// DSN is the database's connection string, as pgx takes it.
	DSN string
	// Replica identifies this server among the replicas.
	Replica string
	Logger  *slog.Logger
	// OnWake is called when another replica's steps may have become Ready,
	// and after every (re)connect, for what was missed meanwhile.
	OnWake func()
	// OnControl is called with another replica's hint for an agent.
	OnControl func(agentID, kind string)
	// KeepAlive is how often a quiet connection is checked (default 30 s).
	KeepAlive time.Duration
}

// Relay sends this replica's hints to the others and passes theirs on.
type Relay struct {
	cfg Config

	mu      sync.Mutex
	wake    bool     // a wake waits to be sent
	hints   []string // "<agent>[,<agent>...] <kind>" waiting to be sent
	dropped int      // hints dropped since the last report
	kick    chan struct{}

	listening atomic.Bool
}

// New returns a Relay; Run connects it.
func New(cfg Config) *Relay {
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.OnWake == nil {
		cfg.OnWake = func() {}
	}
	if cfg.OnControl == nil {
		cfg.OnControl = func(string, string) {}
	}
	return &Relay{cfg: cfg, kick: make(chan struct{}, 1)}
}

// Wake tells the other replicas that steps may have become Ready. It does
// not block: the notification is sent from Run's connection.
func (r *Relay) Wake() {
	r.mu.Lock()
	r.wake = true
	r.mu.Unlock()
	r.signal()
}

// Control passes a hint for an agent to the other replicas, where the agent
// may be connected. It does not block.
func (r *Relay) Control(agentID, kind string) { r.ControlMany([]string{agentID}, kind) }

// ControlMany passes one hint for many agents (a fleet command) to the
// other replicas, packing the ids into as few notifications as fit
// PostgreSQL's payload limit. It does not block.
func (r *Relay) ControlMany(agentIDs []string, kind string) {
	r.mu.Lock()
	for len(agentIDs) > 0 {
		n, size := 0, len(r.cfg.Replica)+len(kind)+2
		for n < len(agentIDs) && size+len(agentIDs[n])+1 <= maxPayload {
			size += len(agentIDs[n]) + 1
			n++
		}
		n = max(n, 1)
		if len(r.hints) < maxQueued {
			r.hints = append(r.hints, strings.Join(agentIDs[:n], ",")+" "+kind)
		} else {
			r.dropped += n
		}
		agentIDs = agentIDs[n:]
	}
	r.mu.Unlock()
	r.signal()
}

// Listening reports whether the relay is connected and listening now.
func (r *Relay) Listening() bool { return r.listening.Load() }

func (r *Relay) signal() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Run listens and sends until ctx is done, reconnecting with backoff
// (0.1 s doubling to 10 s, jittered) whenever the connection fails.
func (r *Relay) Run(ctx context.Context) {
	failures := 0
	for {
		started := time.Now()
		err := r.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) > time.Minute {
			failures = 0
		}
		delay := backoff(failures)
		failures++
		r.cfg.Logger.Warn("replica notifications: connection lost, reconnecting",
			slog.Any("err", err), slog.Duration("in", delay))
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

func backoff(failures int) time.Duration {
	d := min(100*time.Millisecond<<min(failures, 10), 10*time.Second)
	return d/2 + rand.N(d/2+1)
}

// session connects, listens, then sends what is queued and passes on what
// arrives until the connection fails or ctx is done.
func (r *Relay) session(ctx context.Context) error {
	cfg, err := pgx.ParseConfig(r.cfg.DSN)
	if err != nil {
		return fmt.Errorf("parse DSN: %w", err)
	}
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "baton-notify " + r.cfg.Replica
	}
	connectCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := pgx.ConnectConfig(connectCtx, cfg)
	cancel()
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		conn.Close(closeCtx)
	}()
	for _, ch := range []string{ChannelWake, ChannelControl} {
		if _, err := conn.Exec(ctx, "LISTEN "+ch); err != nil {
			return fmt.Errorf("listen %s: %w", ch, err)
		}
	}
	r.listening.Store(true)
	defer r.listening.Store(false)
	r.cfg.Logger.Info("replica notifications: listening", slog.String("replica", r.cfg.Replica))
	// Whatever was notified while no one here listened is lost: rescan.
	r.cfg.OnWake()
	for {
		if err := r.flush(ctx, conn); err != nil {
			return err
		}
		n, err := r.wait(ctx, conn)
		if err != nil {
			return err
		}
		if n != nil {
			r.deliver(n)
		}
	}
}

// wait returns the next notification, or nil when something was queued to
// send or the connection was idle for KeepAlive and still answers.
func (r *Relay) wait(ctx context.Context, conn *pgx.Conn) (*pgconn.Notification, error) {
	waitCtx, cancel := context.WithTimeout(ctx, r.cfg.KeepAlive)
	defer cancel()
	var kicked atomic.Bool
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-r.kick:
			kicked.Store(true)
			cancel()
		case <-done:
		}
	})
	n, err := conn.WaitForNotification(waitCtx)
	close(done)
	wg.Wait() // a kick it took was for something queued before the next flush
	switch {
	case err == nil:
		return n, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case !pgconn.Timeout(err) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded):
		return nil, err
	case kicked.Load():
		return nil, nil
	}
	pingCtx, cancelPing := context.WithTimeout(ctx, 10*time.Second)
	defer cancelPing()
	if err := conn.Ping(pingCtx); err != nil {
		return nil, fmt.Errorf("keep-alive: %w", err)
	}
	return nil, nil
}

// flush sends the queued wake and hints in one statement; on failure they
// are queued again for the next connection.
func (r *Relay) flush(ctx context.Context, conn *pgx.Conn) error {
	r.mu.Lock()
	wake, hints, dropped := r.wake, r.hints, r.dropped
	r.wake, r.hints, r.dropped = false, nil, 0
	r.mu.Unlock()
	if dropped > 0 {
		r.cfg.Logger.Warn("replica notifications: control hints dropped, too many queued", slog.Int("dropped", dropped))
	}
	if !wake && len(hints) == 0 {
		return nil
	}
	var channels, payloads []string
	if wake {
		channels, payloads = append(channels, ChannelWake), append(payloads, r.cfg.Replica)
	}
	for _, h := range hints {
		channels, payloads = append(channels, ChannelControl), append(payloads, r.cfg.Replica+" "+h)
	}
	sendCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := conn.Exec(sendCtx, `SELECT pg_notify(c, p) FROM unnest($1::text[], $2::text[]) AS n(c, p)`, channels, payloads)
	if err != nil {
		r.mu.Lock()
		r.wake = r.wake || wake
		r.hints = append(hints, r.hints...)[:min(len(hints)+len(r.hints), maxQueued)]
		r.mu.Unlock()
		return fmt.Errorf("notify: %w", err)
	}
	return nil
}

// deliver passes on another replica's notification.
func (r *Relay) deliver(n *pgconn.Notification) {
	switch n.Channel {
	case ChannelWake:
		if n.Payload != r.cfg.Replica {
			r.cfg.OnWake()
		}
	case ChannelControl:
		replica, hint, _ := strings.Cut(n.Payload, " ")
		agents, kind, ok := strings.Cut(hint, " ")
		if ok && replica != r.cfg.Replica && agents != "" && kind != "" {
			for agent := range strings.SplitSeq(agents, ",") {
				if agent != "" {
					r.cfg.OnControl(agent, kind)
				}
			}
		}
	}
}
