package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
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
	// Network is the step network mode (docker.NetworkModes); host only
	// with AllowHostNetwork.
	Network          string
	AllowHostNetwork bool
	// ReadOnlyRoot, User, CapAdd and WorkDir: see docker.Options.
	ReadOnlyRoot bool
	User         string
	CapAdd       []string
	WorkDir      string
	// Executor is docker (default) or shell (no isolation).
	Executor string
	// AllowLocalSources permits copy sources, tarball paths and file://
	// repositories, which read the agent's host.
	AllowLocalSources bool
	// H2C speaks HTTP/2 without TLS to an http:// server (rpc.UseH2C).
	H2C         bool
	Pull        string
	Memory      int64
	NanoCPUs    int64
	PidsLimit   int64
	ReserveWait time.Duration
	LogLimit    int64
	HooksDir    string
	// HealthAddr serves /livez and /readyz when set, and /metrics when
	// MetricsToken is set too.
	HealthAddr string
	// MetricsToken is the bearer token /metrics asks for; empty: no /metrics.
	MetricsToken string
	// LogFormat is text or json; LogLevel debug, info, warn or error.
	LogFormat, LogLevel string
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
	case c.WorkDir == "":
		return fmt.Errorf("--work-dir is required")
	case c.ReserveWait <= 0 || c.ReserveWait > protocol.MaxReserveWait:
		return fmt.Errorf("--reserve-wait must be in (0, %s]", protocol.MaxReserveWait)
	case c.MetricsToken != "" && len(c.MetricsToken) < 16:
		return fmt.Errorf("--metrics-token must be at least 16 characters")
	case c.MetricsToken != "" && c.HealthAddr == "":
		return fmt.Errorf("--metrics-token needs --health-addr: /metrics is served there")
	}
	if _, err := newLogger(io.Discard, c.LogFormat, c.LogLevel); err != nil {
		return err
	}
	if c.Executor != "docker" && c.Executor != "shell" {
		return fmt.Errorf("--executor must be docker or shell, not %q", c.Executor)
	}
	if err := docker.CheckNetwork(c.Network, c.AllowHostNetwork); err != nil {
		return fmt.Errorf("--network: %w", err)
	}
	if _, err := docker.NormalizeCapabilities(c.CapAdd); err != nil {
		return fmt.Errorf("--cap-add: %w", err)
	}
	if err := docker.CheckUser(c.User); err != nil {
		return fmt.Errorf("--user: %w", err)
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
	metrics := "off"
	if c.MetricsToken != "" {
		metrics = "on (token <redacted>)"
	}
	return fmt.Sprintf("server=%s token=%s state-dir=%s name=%s labels=%s default-image=%s network=%s allow-host-network=%t "+
		"read-only-root=%t user=%s cap-add=%s work-dir=%s memory=%d nano-cpus=%d pids-limit=%d executor=%s allow-local-sources=%t h2c=%t health-addr=%s metrics=%s log-format=%s log-level=%s",
		c.Server, token, c.StateDir, c.Name, strings.Join(c.Labels, ","), c.DefaultImage, c.Network, c.AllowHostNetwork,
		c.ReadOnlyRoot, c.User, strings.Join(c.CapAdd, ","), c.WorkDir, c.Memory, c.NanoCPUs, c.PidsLimit, c.Executor, c.AllowLocalSources, c.H2C, c.HealthAddr, metrics, c.LogFormat, c.LogLevel)
}

func parseConfig(args []string, getenv func(string) string) (Config, error) {
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	var envErr error
	envBool := func(name string) bool {
		v := getenv(name)
		if v == "" {
			return false
		}
		b, err := strconv.ParseBool(v)
		if err != nil && envErr == nil {
			envErr = fmt.Errorf("%s: %q is not true or false", name, v)
		}
		return b
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
	fs.StringVar(&cfg.Network, "network", env("BATON_STEP_NETWORK", docker.NetworkNone), "step container network: none; bridge (Docker's default, shared by all); run (a network per run, steps reach each other by name); host (only with --allow-host-network) (BATON_STEP_NETWORK)")
	fs.BoolVar(&cfg.AllowHostNetwork, "allow-host-network", envBool("BATON_ALLOW_HOST_NETWORK"), "allow --network host, which gives steps the host's network stack (BATON_ALLOW_HOST_NETWORK)")
	fs.BoolVar(&cfg.ReadOnlyRoot, "read-only-root", envBool("BATON_READ_ONLY_ROOT"), "make step containers' root file system read-only; /tmp becomes a 256 MiB tmpfs, /workspace stays writable (BATON_READ_ONLY_ROOT)")
	fs.StringVar(&cfg.User, "user", env("BATON_STEP_USER", ""), "run steps as UID[:GID], e.g. 65534:65534, instead of the image's user (BATON_STEP_USER)")
	capAdd := fs.String("cap-add", env("BATON_STEP_CAP_ADD", ""), "comma-separated capabilities given back to steps, from Docker's default set: "+strings.Join(docker.AllowedCapabilities(), ",")+" (BATON_STEP_CAP_ADD)")
	fs.StringVar(&cfg.Executor, "executor", env("BATON_EXECUTOR", "docker"), "how steps run: docker (isolated containers) or shell (host processes as the agent's user, NO isolation; for hosts without Docker) (BATON_EXECUTOR)")
	fs.BoolVar(&cfg.AllowLocalSources, "allow-local-sources", envBool("BATON_ALLOW_LOCAL_SOURCES"), "allow runs' copy sources, tarball paths and file:// repositories, which read this host's files (BATON_ALLOW_LOCAL_SOURCES)")
	fs.BoolVar(&cfg.H2C, "h2c", envBool("BATON_H2C"), "experimental: speak HTTP/2 without TLS to an http:// server: one connection for the control stream, the long-poll and every call; the path to the server must pass h2c (BATON_H2C)")
	fs.StringVar(&cfg.WorkDir, "work-dir", env("BATON_WORK_DIR", docker.DefaultWorkDir()), "host directory for the steps' workspaces, one per attempt; the Docker daemon must see it at the same path (BATON_WORK_DIR)")
	fs.Int64Var(&cfg.Memory, "memory", 2<<30, "memory limit per step container, bytes (no swap)")
	fs.Int64Var(&cfg.NanoCPUs, "nano-cpus", 2e9, "CPU limit per step container, in billionths of a CPU")
	fs.Int64Var(&cfg.PidsLimit, "pids-limit", 1024, "process limit per step container")
	fs.StringVar(&cfg.HealthAddr, "health-addr", env("BATON_HEALTH_ADDR", ""), "address for the /livez and /readyz probes (and /metrics with --metrics-token), e.g. 127.0.0.1:8081 (BATON_HEALTH_ADDR); empty: none")
	fs.StringVar(&cfg.MetricsToken, "metrics-token", "", "serve Prometheus /metrics on --health-addr to callers with this bearer token, 16+ characters (BATON_METRICS_TOKEN, BATON_METRICS_TOKEN_FILE); empty: no /metrics")
	fs.StringVar(&cfg.LogFormat, "log-format", env("BATON_LOG_FORMAT", "text"), "log format: text (key=value) or json (one object per line) (BATON_LOG_FORMAT)")
	fs.StringVar(&cfg.LogLevel, "log-level", env("BATON_LOG_LEVEL", "info"), "log level: debug, info, warn or error (BATON_LOG_LEVEL)")
	fs.StringVar(&cfg.HooksDir, "hooks-dir", env("BATON_HOOKS_DIR", ""), "directory of lifecycle hooks: executables named pre-step, post-step, on-error, cleanup (BATON_HOOKS_DIR)")
	fs.Int64Var(&cfg.LogLimit, "log-limit", agent.DefaultLogLimit, "bytes of each step's output kept: the head streams, past the limit only the last 1 MiB is kept")
	fs.DurationVar(&cfg.ReserveWait, "reserve-wait", protocol.MaxReserveWait, "how long one reserve long-poll waits")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if envErr != nil {
		return cfg, envErr
	}
	cfg.Labels = agentLabels(*labels)
	cfg.CapAdd = splitList(*capAdd)
	if cfg.WorkDir != "" {
		// Docker mounts host paths: they must be absolute.
		abs, err := filepath.Abs(cfg.WorkDir)
		if err != nil {
			return cfg, fmt.Errorf("--work-dir: %w", err)
		}
		cfg.WorkDir = abs
	}
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
	if cfg.MetricsToken == "" {
		cfg.MetricsToken = getenv("BATON_METRICS_TOKEN")
	}
	if f := getenv("BATON_METRICS_TOKEN_FILE"); f != "" && cfg.MetricsToken == "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return cfg, fmt.Errorf("BATON_METRICS_TOKEN_FILE: %w", err)
		}
		cfg.MetricsToken = strings.TrimSpace(string(b))
	}
	return cfg, cfg.Validate()
}

// splitList splits a comma-separated flag, dropping empty items.
func splitList(flag string) []string {
	var items []string
	for _, item := range strings.Split(flag, ",") {
		if item = strings.TrimSpace(item); item != "" {
			items = append(items, item)
		}
	}
	return items
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
