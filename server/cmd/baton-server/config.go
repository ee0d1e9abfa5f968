package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/baton-ci/baton/server/api"
	"github.com/baton-ci/baton/server/store"
	"github.com/baton-ci/baton/shared/protocol"
)

// Config is the server's configuration: flags win over BATON_* variables,
// which win over the defaults.
type Config struct {
	Addr    string
	DataDir string
	// DB selects the database: empty for SQLite in the data dir, or a
	// postgres:// URL (may come from BATON_DB_FILE: it holds a password).
	DB string
	// DBMaxConns bounds the PostgreSQL connections this server opens; 0:
	// store.DefaultPostgresConns.
	DBMaxConns int
	// AdminToken may also come from a file (BATON_ADMIN_TOKEN_FILE); when
	// neither is set one is generated into <data-dir>/admin-token.
	AdminToken        string
	AgentPoolSize     int
	AgentEviction     time.Duration
	AgentPingInterval time.Duration
	// AgentParkAfter is how long an agent's reserve poll waits for work
	// before the agent is parked (it holds no poll and is told by a hint on
	// its control channel); 0: agents are never parked.
	AgentParkAfter time.Duration
	// LeaseLength is how long a reserved step stays its agent's without a
	// renewal; a lapsed lease ends the step agent_lost.
	LeaseLength time.Duration
	// MaxRunning is the global pool limit: steps running fleet-wide; 0: none.
	MaxRunning int
	// ArtifactMaxBytes bounds one artifact (cacher put); ArtifactRetention
	// is how long a run's artifacts are kept after it finished.
	ArtifactMaxBytes  int64
	ArtifactRetention time.Duration
	// LogFormat is text or json; LogLevel debug, info, warn or error.
	LogFormat, LogLevel string
}

// Validate reports the first problem with the configuration.
func (c *Config) Validate() error {
	switch {
	case c.Addr == "":
		return fmt.Errorf("--addr is required")
	case c.DataDir == "":
		return fmt.Errorf("--data-dir is required")
	case c.DB != "" && !strings.HasPrefix(c.DB, "postgres://") && !strings.HasPrefix(c.DB, "postgresql://"):
		return fmt.Errorf("--db must be empty (SQLite in the data dir) or a postgres:// URL")
	case c.DBMaxConns < 0:
		return fmt.Errorf("--db-max-conns must not be negative")
	case c.AgentPoolSize < 1 || c.AgentPoolSize > 256:
		return fmt.Errorf("--agent-pool-size must be 1 to 256, not %d", c.AgentPoolSize)
	case c.AgentEviction < 0:
		return fmt.Errorf("--agent-eviction must not be negative")
	case c.AgentPingInterval < 100*time.Millisecond:
		return fmt.Errorf("--agent-ping-interval must be at least 100ms")
	case c.AgentParkAfter < 0:
		return fmt.Errorf("--agent-park-after must not be negative")
	case c.MaxRunning < 0:
		return fmt.Errorf("--max-running must not be negative")
	case c.LeaseLength < time.Second || c.LeaseLength > time.Hour:
		return fmt.Errorf("--lease-length must be 1s to 1h, not %s", c.LeaseLength)
	case c.ArtifactMaxBytes < 1:
		return fmt.Errorf("--artifact-max-bytes must be positive, not %d", c.ArtifactMaxBytes)
	case c.ArtifactRetention < time.Second:
		return fmt.Errorf("--artifact-retention must be at least 1s, not %s", c.ArtifactRetention)
	}
	if _, err := newLogger(io.Discard, c.LogFormat, c.LogLevel); err != nil {
		return err
	}
	return nil
}

// String prints the effective configuration with secrets redacted.
func (c Config) String() string {
	token := "<generated>"
	if c.AdminToken != "" {
		token = "<redacted>"
	}
	db := "sqlite"
	if c.DB != "" {
		conns := c.DBMaxConns
		if conns == 0 {
			conns = store.DefaultPostgresConns()
		}
		db = fmt.Sprintf("%s db-max-conns=%d", store.RedactDSN(c.DB), conns)
	}
	return fmt.Sprintf("addr=%s data-dir=%s db=%s admin-token=%s agent-pool-size=%d agent-eviction=%s agent-park-after=%s lease-length=%s max-running=%d artifact-max-bytes=%d artifact-retention=%s log-format=%s log-level=%s",
		c.Addr, c.DataDir, db, token, c.AgentPoolSize, c.AgentEviction, c.AgentParkAfter, c.LeaseLength, c.MaxRunning, c.ArtifactMaxBytes, c.ArtifactRetention, c.LogFormat, c.LogLevel)
}

func parseConfig(args []string, getenv func(string) string) (Config, error) {
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	cfg := Config{}
	fs := flag.NewFlagSet("baton-server", flag.ContinueOnError)
	fs.StringVar(&cfg.Addr, "addr", env("BATON_ADDR", "127.0.0.1:8484"), "listen address (BATON_ADDR)")
	fs.StringVar(&cfg.DataDir, "data-dir", env("BATON_DATA_DIR", "baton-data"), "directory for the database and keys (BATON_DATA_DIR)")
	fs.StringVar(&cfg.DB, "db", getenv("BATON_DB"), "database: empty for SQLite in the data dir, or postgres://USER:PASSWORD@HOST:PORT/DB?sslmode=... shared by several server replicas (BATON_DB, BATON_DB_FILE)")
	fs.IntVar(&cfg.DBMaxConns, "db-max-conns", 0, fmt.Sprintf("PostgreSQL connections this server opens at most; 0: three per CPU, at least 4 (here %d)", store.DefaultPostgresConns()))
	fs.IntVar(&cfg.AgentPoolSize, "agent-pool-size", 1, "steps each agent runs at once")
	fs.DurationVar(&cfg.AgentEviction, "agent-eviction", 10*time.Minute, "how long a draining agent lets running steps finish")
	fs.DurationVar(&cfg.AgentPingInterval, "agent-ping-interval", 10*time.Second, "how often agents' control channels are pinged; an agent restarts its channel after 3 missed pings")
	fs.DurationVar(&cfg.AgentParkAfter, "agent-park-after", api.DefaultParkAfter, "how long an idle agent's reserve poll is held before the agent is parked: it then keeps only its control channel open and is told by a hint when a step may be ready; 0: hold polls, never park")
	fs.IntVar(&cfg.MaxRunning, "max-running", 0, "global pool limit: at most this many steps run at once across all agents; 0: no limit")
	fs.DurationVar(&cfg.LeaseLength, "lease-length", protocol.DefaultLeaseLength, "how long a running step stays its agent's without a renewal; past it the step is retried or fails agent_lost")
	fs.Int64Var(&cfg.ArtifactMaxBytes, "artifact-max-bytes", api.DefaultArtifactMaxBytes, "largest artifact a step may store with cacher put, in bytes; larger ones are refused with 413")
	fs.DurationVar(&cfg.ArtifactRetention, "artifact-retention", api.DefaultArtifactRetention, "how long a run's artifacts are kept after the run finished")
	fs.StringVar(&cfg.LogFormat, "log-format", env("BATON_LOG_FORMAT", "text"), "log format: text (key=value) or json (one object per line) (BATON_LOG_FORMAT)")
	fs.StringVar(&cfg.LogLevel, "log-level", env("BATON_LOG_LEVEL", "info"), "log level: debug, info, warn or error (BATON_LOG_LEVEL)")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	cfg.AdminToken = getenv("BATON_ADMIN_TOKEN")
	if f := getenv("BATON_ADMIN_TOKEN_FILE"); f != "" && cfg.AdminToken == "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return cfg, fmt.Errorf("BATON_ADMIN_TOKEN_FILE: %w", err)
		}
		cfg.AdminToken = strings.TrimSpace(string(b))
	}
	if f := getenv("BATON_DB_FILE"); f != "" && cfg.DB == "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return cfg, fmt.Errorf("BATON_DB_FILE: %w", err)
		}
		cfg.DB = strings.TrimSpace(string(b))
	}
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return cfg, err
	}
	cfg.DataDir = abs
	return cfg, cfg.Validate()
}
