package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/baton-ci/baton/agent"
	"github.com/baton-ci/baton/agent/docker"
	"github.com/baton-ci/baton/shared/protocol"
	"github.com/baton-ci/baton/shared/runbook"
)

// Config is the agent's configuration: flags win over BATON_* variables,
// which win over the defaults.
type Config struct {
	Server       string
	Token        string
	StateDir     string
	Name         string
	Labels       []string
	DefaultImage string
	Network      string
	Pull         string
	Memory       int64
	NanoCPUs     int64
	PidsLimit    int64
	ReserveWait  time.Duration
	LogLimit     int64
	HooksDir     string
	// HealthAddr serves /livez and /readyz when set.
	HealthAddr string
}

// Validate reports the first problem with the configuration.
func (c *Config) Validate() error {
	switch {
	case c.Server == "":
		return fmt.Errorf("--server is required (or BATON_SERVER)")
	case c.StateDir == "":
		return fmt.Errorf("--state-dir is required")
	case c.Name == "":
		return fmt.Errorf("--name is required")
	case c.Pull != "if-not-present" && c.Pull != "always" && c.Pull != "never":
		return fmt.Errorf("--pull must be if-not-present, always or never, not %q", c.Pull)
	case c.Network != "none" && c.Network != "bridge":
		return fmt.Errorf("--network must be none or bridge, not %q", c.Network)
	case c.ReserveWait <= 0 || c.ReserveWait > protocol.MaxReserveWait:
		return fmt.Errorf("--reserve-wait must be in (0, %s]", protocol.MaxReserveWait)
	}
	for _, l := range c.Labels {
		if !runbook.ValidLabel(l) {
			return fmt.Errorf("--labels: %q is not a label: use NAME or NAME=VALUE", l)
		}
	}
	return nil
}

// String prints the effective configuration with the token redacted.
func (c Config) String() string {
	token := "<unset>"
	if c.Token != "" {
		token = "<redacted>"
	}
	return fmt.Sprintf("server=%s token=%s state-dir=%s name=%s labels=%s default-image=%s network=%s memory=%d nano-cpus=%d pids-limit=%d",
		c.Server, token, c.StateDir, c.Name, strings.Join(c.Labels, ","), c.DefaultImage, c.Network, c.Memory, c.NanoCPUs, c.PidsLimit)
}

func parseConfig(args []string, getenv func(string) string) (Config, error) {
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	host, _ := os.Hostname()
	var cfg Config
	fs := flag.NewFlagSet("baton-agent", flag.ContinueOnError)
	fs.StringVar(&cfg.Server, "server", env("BATON_SERVER", ""), "server URL (BATON_SERVER)")
	fs.StringVar(&cfg.Token, "token", "", "registration token (BATON_REGISTRATION_TOKEN, BATON_REGISTRATION_TOKEN_FILE)")
	fs.StringVar(&cfg.StateDir, "state-dir", env("BATON_STATE_DIR", "baton-agent"), "directory for the agent's identity (BATON_STATE_DIR)")
	fs.StringVar(&cfg.Name, "name", env("BATON_AGENT_NAME", host), "agent name shown to admins (BATON_AGENT_NAME)")
	labels := fs.String("labels", env("BATON_AGENT_LABELS", ""), "comma-separated labels, NAME or NAME=VALUE, that steps' runs_on match; os= and arch= are added (BATON_AGENT_LABELS)")
	fs.StringVar(&cfg.DefaultImage, "default-image", env("BATON_DEFAULT_IMAGE", docker.DefaultImage), "image for steps that name none (BATON_DEFAULT_IMAGE)")
	fs.StringVar(&cfg.Pull, "pull", env("BATON_PULL_POLICY", "if-not-present"), "image pull policy: if-not-present, always or never (BATON_PULL_POLICY)")
	fs.StringVar(&cfg.Network, "network", env("BATON_STEP_NETWORK", "none"), "step container network: none or bridge (BATON_STEP_NETWORK)")
	fs.Int64Var(&cfg.Memory, "memory", 2<<30, "memory limit per step container, bytes (no swap)")
	fs.Int64Var(&cfg.NanoCPUs, "nano-cpus", 2e9, "CPU limit per step container, in billionths of a CPU")
	fs.Int64Var(&cfg.PidsLimit, "pids-limit", 1024, "process limit per step container")
	fs.StringVar(&cfg.HealthAddr, "health-addr", env("BATON_HEALTH_ADDR", ""), "address for the /livez and /readyz probes, e.g. :8081 (BATON_HEALTH_ADDR); empty: none")
	fs.StringVar(&cfg.HooksDir, "hooks-dir", env("BATON_HOOKS_DIR", ""), "directory of lifecycle hooks: executables named pre-step, post-step, on-error, cleanup (BATON_HOOKS_DIR)")
	fs.Int64Var(&cfg.LogLimit, "log-limit", agent.DefaultLogLimit, "bytes of each step's output kept: the head streams, past the limit only the last 1 MiB is kept")
	fs.DurationVar(&cfg.ReserveWait, "reserve-wait", protocol.MaxReserveWait, "how long one reserve long-poll waits")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	cfg.Labels = agentLabels(*labels)
	if cfg.Token == "" {
		cfg.Token = getenv("BATON_REGISTRATION_TOKEN")
	}
	if f := getenv("BATON_REGISTRATION_TOKEN_FILE"); f != "" && cfg.Token == "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return cfg, fmt.Errorf("BATON_REGISTRATION_TOKEN_FILE: %w", err)
		}
		cfg.Token = strings.TrimSpace(string(b))
	}
	return cfg, cfg.Validate()
}

// agentLabels parses --labels and adds the os= and arch= every agent has.
func agentLabels(flag string) []string {
	labels := []string{"os=" + runtime.GOOS, "arch=" + runtime.GOARCH}
	for _, l := range strings.Split(flag, ",") {
		if l = strings.TrimSpace(l); l != "" && !slices.Contains(labels, l) {
			labels = append(labels, l)
		}
	}
	return labels
}
