// Command baton-load is a load driver: it starts the real baton-server as a
// child process (SQLite in a temporary data dir, a free loopback port) and
// runs simulated agents in this process that speak the real agent protocol
// (agent.Agent with rpc.Client: registration, signed token exchange, SSE
// control channel, reserve long-polls with sealed payloads, log upload,
// complete) with a no-op executor. It prints dispatch latency, end-to-end
// throughput, server CPU and RSS, and how an idle fleet of thousands of
// agents fares. docs/performance.md explains each figure.
//
//	go run ./agent/cmd/baton-load -server bin/baton-server
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Config is the driver's configuration, from flags.
type Config struct {
	Server  string // the baton-server binary
	WorkDir string // data dirs, logs and agent state; "" a temporary dir, removed after
	Keep    bool   // keep WorkDir

	Agents              int // agents of the dispatch workloads
	LatencyChains       int
	LatencySteps        int
	ThroughputChains    int
	ThroughputSteps     int
	StepDelay           time.Duration // how long each no-op step takes
	RegisterConcurrency int           // agents registering and connecting at once

	Fleet              int           // idle agents; 0 skips the fleet test
	IdleWindow         time.Duration // how long the idle fleet is measured
	Control            string        // fleet-disable, disable or config
	H2C                bool          // agents speak HTTP/2 without TLS
	DB                 string        // a postgres:// DSN; empty: SQLite
	ControlConcurrency int           // admin commands in flight at once
	ControlTimeout     time.Duration // how long to wait for the command to reach all

	Timeout time.Duration // bound on starting a fleet and on each workload
}

// Validate reports the first problem with the configuration.
func (c *Config) Validate() error {
	switch {
	case c.Server == "":
		return errors.New("-server is required")
	case c.Agents < 0:
		return errors.New("-agents must not be negative")
	case c.LatencyChains < 1 || c.LatencySteps < c.LatencyChains || c.LatencySteps/c.LatencyChains > 1000:
		return errors.New("-latency-chains must be at least 1, with 1 to 1000 -latency-steps per chain")
	case c.ThroughputChains < 1 || c.ThroughputSteps < c.ThroughputChains || c.ThroughputSteps/c.ThroughputChains > 1000:
		return errors.New("-throughput-chains must be at least 1, with 1 to 1000 -throughput-steps per chain")
	case c.RegisterConcurrency < 1 || c.ControlConcurrency < 1:
		return errors.New("-register-concurrency and -control-concurrency must be at least 1")
	case c.Fleet < 0:
		return errors.New("-fleet must not be negative")
	case c.Control != "fleet-disable" && c.Control != "disable" && c.Control != "config":
		return fmt.Errorf("-control %q: use fleet-disable, disable or config", c.Control)
	case c.StepDelay < 0 || c.IdleWindow < 0 || c.ControlTimeout <= 0 || c.Timeout <= 0:
		return errors.New("durations must not be negative; timeouts must be positive")
	}
	return nil
}

func parseConfig(args []string) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("baton-load", flag.ContinueOnError)
	fs.StringVar(&c.Server, "server", "bin/baton-server", "baton-server binary to start")
	fs.StringVar(&c.WorkDir, "dir", "", "work directory (default: a temporary one, removed at the end)")
	fs.BoolVar(&c.Keep, "keep", false, "keep the work directory (server logs, databases, agent logs)")
	fs.IntVar(&c.Agents, "agents", 100, "agents for the latency and throughput workloads (0: skip them)")
	fs.IntVar(&c.LatencyChains, "latency-chains", 1, "chains running at once in the latency workload")
	fs.IntVar(&c.LatencySteps, "latency-steps", 1000, "steps in the latency workload, split evenly over its chains")
	fs.IntVar(&c.ThroughputChains, "throughput-chains", 200, "chains running at once in the throughput workload")
	fs.IntVar(&c.ThroughputSteps, "throughput-steps", 10000, "steps in the throughput workload, split evenly over its chains")
	fs.DurationVar(&c.StepDelay, "step-delay", 0, "how long each no-op step takes")
	fs.IntVar(&c.RegisterConcurrency, "register-concurrency", 64, "agents registering and connecting at once")
	fs.IntVar(&c.Fleet, "fleet", 10000, "idle agents for the fleet test (0: skip it)")
	fs.StringVar(&c.DB, "db", "", "run the server on PostgreSQL: a postgres:// DSN of an empty database or schema (search_path=...); empty: SQLite")
	fs.BoolVar(&c.H2C, "h2c", false, "agents speak HTTP/2 without TLS (baton-agent --h2c, experimental): one connection each")
	fs.DurationVar(&c.IdleWindow, "idle-window", 22*time.Second, "how long the idle fleet is measured (a ping round is every 10 s)")
	fs.StringVar(&c.Control, "control", "fleet-disable", "control command for the fleet: fleet-disable (one POST /api/v1/fleet/disable for all), or disable or config (one command per agent)")
	fs.IntVar(&c.ControlConcurrency, "control-concurrency", 256, "control commands in flight at once")
	fs.DurationVar(&c.ControlTimeout, "control-timeout", 90*time.Second, "how long to wait for the command to reach every agent")
	fs.DurationVar(&c.Timeout, "timeout", 3*time.Minute, "bound on starting a fleet and on each workload")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return c, c.Validate()
}

func main() {
	cfg, err := parseConfig(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "baton-load:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "baton-load:", err)
		os.Exit(1)
	}
}

// Open files: an idle agent holds one connection to the server, its
// control stream (it parks instead of holding a reserve poll), over HTTP/1.1
// and h2c alike. While it connects it has a second one over HTTP/1.1 for
// its calls and first poll, for the server's park time (5 s) and the
// agent's idle-connection timeout (5 s) after. The slack covers those, the
// database, logs and admin calls.
const (
	fdsPerAgent = 1
	fdSlack     = 1024
)

func run(ctx context.Context, cfg Config, w io.Writer) error {
	if cfg.WorkDir == "" {
		dir, err := os.MkdirTemp("", "baton-load-")
		if err != nil {
			return err
		}
		cfg.WorkDir = dir
		if !cfg.Keep {
			defer os.RemoveAll(dir)
		}
	}
	// The server holds the other ends of the agents' connections.
	want := uint64(fdsPerAgent*max(cfg.Fleet, cfg.Agents) + fdSlack)
	limit, err := raiseOpenFiles(want)
	if err != nil {
		return fmt.Errorf("open-file limit: %w", err)
	}
	fmt.Fprintf(w, "baton-load: %s; server %s; work dir %s\n", machine(), cfg.Server, cfg.WorkDir)
	spreadSourceAddrs()
	ports := ephemeralPorts() * sourceAddrs
	fmt.Fprintf(w, "open-file limit (driver and server): %d, wanted %d; ephemeral ports: %d (%d loopback source addresses)\n",
		limit, want, ports, sourceAddrs)
	fmt.Fprintf(w, "agents speak %s\n", map[bool]string{true: "HTTP/2 without TLS (h2c): one connection each", false: "HTTP/1.1: one connection each when idle, two while busy"}[cfg.H2C])
	if ports < fdsPerAgent*cfg.Fleet+1000 {
		return fmt.Errorf("a fleet of %d needs about %d ephemeral ports: lower -fleet", cfg.Fleet, fdsPerAgent*cfg.Fleet+1000)
	}
	if fit := int(limit-fdSlack) / fdsPerAgent; cfg.Fleet > fit {
		fmt.Fprintf(w, "NOTE: the hard open-file limit is %d and may not be raised here; each agent costs the server (and this driver) "+
			"up to %d descriptors, so the fleet test runs %d agents, not %d\n",
			limit, fdsPerAgent, fit, cfg.Fleet)
		cfg.Fleet = fit
	}

	agentLog, err := os.Create(cfg.WorkDir + "/agents.log")
	if err != nil {
		return err
	}
	defer agentLog.Close()
	warnings := &lineCounter{w: agentLog}
	logger := slog.New(slog.NewTextHandler(warnings, &slog.HandlerOptions{Level: slog.LevelWarn}))

	var errs []error
	if cfg.Agents > 0 {
		errs = append(errs, benchDispatch(ctx, cfg, logger, w))
	}
	if cfg.Fleet > 0 && ctx.Err() == nil {
		errs = append(errs, benchFleet(ctx, cfg, logger, w))
	}
	if n, byMsg := warnings.summary(); n > 0 {
		fmt.Fprintf(w, "\nagents logged %d warnings or errors (%s):%s\n", n, agentLog.Name(), byMsg)
	}
	return errors.Join(errs...)
}

// machine describes this host: CPUs, memory and kernel.
func machine() string {
	model, memory := "", ""
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() && model == "" {
			if name, value, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(name) == "model name" {
				model = strings.TrimSpace(value)
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			memory = fmt.Sprintf(", %.0f GiB", float64(kb)/(1<<20))
		}
	}
	var uts syscall.Utsname
	kernel := ""
	if syscall.Uname(&uts) == nil {
		var b strings.Builder
		for _, c := range uts.Release {
			if c == 0 {
				break
			}
			b.WriteByte(byte(c))
		}
		kernel = ", linux " + b.String()
	}
	return fmt.Sprintf("%d CPUs (%s)%s%s, %s", runtime.NumCPU(), model, memory, kernel, runtime.Version())
}

// lineCounter counts the log lines written through it by message.
type lineCounter struct {
	w     io.Writer
	mu    sync.Mutex
	lines int
	byMsg map[string]int
}

func (c *lineCounter) Write(p []byte) (int, error) {
	c.mu.Lock()
	for _, line := range strings.Split(strings.TrimSpace(string(p)), "\n") {
		c.lines++
		if c.byMsg == nil {
			c.byMsg = map[string]int{}
		}
		c.byMsg[logMessage(line)]++
	}
	c.mu.Unlock()
	return c.w.Write(p)
}

// logMessage is the msg of a slog text line, with the error if any.
func logMessage(line string) string {
	msg := line
	if _, rest, ok := strings.Cut(line, " msg="); ok {
		msg = rest
		if i := strings.Index(rest, " agent_id="); i >= 0 {
			msg = rest[:i]
		}
		if _, e, ok := strings.Cut(rest, " err="); ok {
			if q, ok := strings.CutPrefix(e, `"`); ok {
				e, _, _ = strings.Cut(q, `"`)
			} else {
				e, _, _ = strings.Cut(e, " ")
			}
			msg += ": " + e
		}
	}
	return msg
}

// summary counts the lines, by message.
func (c *lineCounter) summary() (int, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for msg, n := range c.byMsg {
		fmt.Fprintf(&b, "\n  %6d × %s", n, msg)
	}
	return c.lines, b.String()
}
