package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Config is the server's configuration: flags win over BATON_* variables,
// which win over the defaults.
type Config struct {
	Addr    string
	DataDir string
	// AdminToken may also come from a file (BATON_ADMIN_TOKEN_FILE); when
	// neither is set one is generated into <data-dir>/admin-token.
	AdminToken        string
	AgentPoolSize     int
	AgentEviction     time.Duration
	AgentPingInterval time.Duration
}

// Validate reports the first problem with the configuration.
func (c *Config) Validate() error {
	switch {
	case c.Addr == "":
		return fmt.Errorf("--addr is required")
	case c.DataDir == "":
		return fmt.Errorf("--data-dir is required")
	case c.AgentPoolSize < 1 || c.AgentPoolSize > 256:
		return fmt.Errorf("--agent-pool-size must be 1 to 256, not %d", c.AgentPoolSize)
	case c.AgentEviction < 0:
		return fmt.Errorf("--agent-eviction must not be negative")
	case c.AgentPingInterval < 100*time.Millisecond:
		return fmt.Errorf("--agent-ping-interval must be at least 100ms")
	}
	return nil
}

// String prints the effective configuration with secrets redacted.
func (c Config) String() string {
	token := "<generated>"
	if c.AdminToken != "" {
		token = "<redacted>"
	}
	return fmt.Sprintf("addr=%s data-dir=%s admin-token=%s agent-pool-size=%d agent-eviction=%s",
		c.Addr, c.DataDir, token, c.AgentPoolSize, c.AgentEviction)
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
	fs.IntVar(&cfg.AgentPoolSize, "agent-pool-size", 1, "steps each agent runs at once")
	fs.DurationVar(&cfg.AgentEviction, "agent-eviction", 10*time.Minute, "how long a draining agent lets running steps finish")
	fs.DurationVar(&cfg.AgentPingInterval, "agent-ping-interval", 10*time.Second, "how often agents' control channels are pinged; an agent restarts its channel after 3 missed pings")
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
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return cfg, err
	}
	cfg.DataDir = abs
	return cfg, cfg.Validate()
}
