package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/baton-ci/baton/server/api"
	"github.com/baton-ci/baton/server/artifacts"
	"github.com/baton-ci/baton/server/control"
	"github.com/baton-ci/baton/server/gitcache"
	"github.com/baton-ci/baton/server/metrics"
	"github.com/baton-ci/baton/server/pgnotify"
	"github.com/baton-ci/baton/server/secretbox"
	"github.com/baton-ci/baton/server/store"
	"github.com/baton-ci/baton/shared/protocol"
	"github.com/baton-ci/baton/ui"
)

// Main is the whole server, startable from tests.
type Main struct {
	Config Config
	Logger *slog.Logger
	// Out receives the one-time admin token notice.
	Out io.Writer
	// Version is the build's version (for /metrics).
	Version string

	db       *store.DB
	listener net.Listener
	http     *http.Server
	control  *control.Hub
	stopPing chan struct{}
	// relayDone is closed when the replica relay (PostgreSQL) has stopped.
	relayDone chan struct{}
	// stopRequests cancels the base context of every request at shutdown,
	// so held long-polls answer at once instead of delaying it.
	stopRequests context.CancelFunc
}

// Run opens the database, serves HTTP and blocks until ctx is done, then
// shuts down gracefully.
func (m *Main) Run(ctx context.Context) error {
	if err := m.open(ctx); err != nil {
		m.Close()
		return err
	}
	defer m.Close()
	errc := make(chan error, 1)
	go func() { errc <- m.http.Serve(m.listener) }()
	m.Logger.Info("baton-server listening", slog.String("url", "http://"+m.listener.Addr().String()),
		slog.String("config", m.Config.String()))
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	m.Logger.Info("baton-server shutting down")
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	m.stopRequests()
	close(m.stopPing)
	m.control.Close()
	return m.http.Shutdown(shutdown)
}

func (m *Main) open(ctx context.Context) error {
	if err := os.MkdirAll(m.Config.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	adminToken, err := m.adminToken()
	if err != nil {
		return err
	}
	key, err := loadOrCreateKey(filepath.Join(m.Config.DataDir, "agent-token-signing.key"))
	if err != nil {
		return err
	}
	if m.Config.DB == "" {
		m.db, err = store.OpenSQLite(ctx, filepath.Join(m.Config.DataDir, "baton.db"))
	} else {
		m.db, err = store.OpenPostgres(ctx, m.Config.DB, m.Config.DBMaxConns)
	}
	if err != nil {
		return err
	}
	m.db.MaxRunning = m.Config.MaxRunning
	secretKey, err := secretbox.LoadOrCreateKey(filepath.Join(m.Config.DataDir, "secrets.key"))
	if err != nil {
		return err
	}
	box, err := secretbox.New(secretKey)
	if err != nil {
		return err
	}
	files, err := artifacts.Open(filepath.Join(m.Config.DataDir, "artifacts"))
	if err != nil {
		return err
	}
	repos, err := gitcache.New(filepath.Join(m.Config.DataDir, "git"))
	if err != nil {
		return err
	}
	m.control = control.New(10*time.Second, m.Logger)
	m.stopPing = make(chan struct{})
	go m.control.Ping(m.Config.AgentPingInterval, m.stopPing)
	wake := api.NewWake()
	wake.SetDue(func(limit int) int {
		n, err := m.db.DueSteps(context.Background(), limit)
		if err != nil {
			return limit // hint them all rather than miss a step
		}
		return n
	})
	srv := &api.Server{
		Runs: m.db, Dispatch: m.db, Agents: m.db, Secrets: m.db, Projects: m.db, Hooks: m.db, Schedules: m.db, Audit: m.db, Queue: m.db, Notifications: m.db, Repos: repos, Box: box, AdminToken: adminToken, SigningKey: key,
		AgentConfig: protocol.AgentConfig{PoolSize: m.Config.AgentPoolSize, EvictionTime: m.Config.AgentEviction,
			PingInterval: m.Config.AgentPingInterval, LeaseLength: m.Config.LeaseLength},
		Control: m.control, ParkAfter: m.Config.AgentParkAfter,
		Wake: wake, Logger: m.Logger, UI: ui.Handler(), Users: m.db, RunList: m.db, Ping: m.db.Ping,
		Artifacts: m.db, ArtifactFiles: files, ArtifactMaxBytes: m.Config.ArtifactMaxBytes,
		ArtifactRetention: m.Config.ArtifactRetention,
	}
	srv.Metrics = metrics.New(metrics.Config{Store: m.db, Hub: m.control, Version: m.Version, Logger: m.Logger})
	if m.listener, err = net.Listen("tcp", m.Config.Addr); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// No WriteTimeout: reserve long-polls hold responses open for up to 30 s.
	base, stopRequests := context.WithCancel(context.WithoutCancel(ctx))
	m.stopRequests = stopRequests
	go srv.ExpireLeases(base)
	go srv.KeepArtifacts(base)
	if m.Config.DB != "" {
		m.relay(base, wake)
	}
	// HTTP/1.1, and HTTP/2 without TLS for agents started with --h2c: one
	// connection carries an agent's control stream, long-poll and calls.
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	m.http = &http.Server{
		Handler: srv.Router(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		BaseContext: func(net.Listener) context.Context { return base },
		Protocols:   &protocols,
	}
	go srv.ProcessHooks(base) // after Router, which readies its wake-up channel
	go srv.RunSchedules(base, 10*time.Second)
	go srv.SendNotifications(base, &http.Client{Timeout: 15 * time.Second})
	return nil
}

// relay connects this replica's wake and control hints with the other
// replicas' through PostgreSQL LISTEN/NOTIFY, until ctx is done.
func (m *Main) relay(ctx context.Context, wake *api.Wake) {
	replica := uuid.NewString()
	m.Logger.Info("replica relay starting", slog.String("replica", replica))
	r := pgnotify.New(pgnotify.Config{
		DSN: m.Config.DB, Replica: replica, Logger: m.Logger,
		OnWake: wake.NotifyLocal, OnControl: m.control.Deliver,
	})
	wake.SetBroadcast(r.Wake)
	m.control.SetBroadcast(r.ControlMany)
	m.relayDone = make(chan struct{})
	go func() {
		defer close(m.relayDone)
		r.Run(ctx)
	}()
}

// adminToken returns the configured admin token, or the one generated into
// <data-dir>/admin-token, creating it (0600) and announcing it once.
func (m *Main) adminToken() (string, error) {
	if m.Config.AdminToken != "" {
		return m.Config.AdminToken, nil
	}
	path := filepath.Join(m.Config.DataDir, "admin-token")
	b, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("admin token: %w", err)
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	token := "bat_" + base64.RawURLEncoding.EncodeToString(secret)
	if err := writeNew(path, []byte(token+"\n")); err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	fmt.Fprintf(m.Out, "Generated admin token (shown once; also in %s):\n%s\n", path, token)
	return token, nil
}

// loadOrCreateKey reads an Ed25519 seed, generating it on first start.
func loadOrCreateKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		seed := make([]byte, ed25519.SeedSize)
		rand.Read(seed)
		b = []byte(base64.StdEncoding.EncodeToString(seed))
		if err := writeNew(path, b); err != nil {
			return nil, fmt.Errorf("signing key: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	seed, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("signing key %s is corrupt", path)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// writeNew creates path with mode 0600, failing if it exists.
func writeNew(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Close releases the database and listener.
func (m *Main) Close() error {
	var errs []error
	if m.listener != nil && m.http == nil {
		errs = append(errs, m.listener.Close())
	}
	if m.relayDone != nil {
		if m.stopRequests != nil {
			m.stopRequests()
		}
		<-m.relayDone
		m.relayDone = nil
	}
	if m.db != nil {
		errs = append(errs, m.db.Close())
		m.db = nil
	}
	return errors.Join(errs...)
}
