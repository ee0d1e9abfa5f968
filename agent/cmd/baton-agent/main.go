// Command baton-agent runs Baton steps on this host in Docker containers.
//
//	baton-agent --server URL --token TOKEN --state-dir DIR --name NAME
//	baton-agent build-image [--busybox PATH] [--tag TAG]
//	baton-agent validate RUNBOOK.yml...
//	baton-agent plan [--param NAME=VALUE]... RUNBOOK.yml
//	baton-agent test [--stubs FILE] [--param NAME=VALUE]... [--expect STATE] RUNBOOK.yml
//	baton-agent run [--param NAME=VALUE]... [--parallel N] RUNBOOK.yml
//	baton-agent cacher put|get|delete|mask|output ...   (or the binary called as cacher, inside a step)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/baton-ci/baton/agent"
	"github.com/baton-ci/baton/agent/cacher"
	"github.com/baton-ci/baton/agent/docker"
	"github.com/baton-ci/baton/agent/rpc"
	"github.com/baton-ci/baton/agent/shell"
	"github.com/baton-ci/baton/agent/source"
	"github.com/baton-ci/baton/shared/protocol"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	// Inside a step the binary is mounted as cacher.
	if filepath.Base(os.Args[0]) == cacher.Name {
		os.Exit(cacher.Main(context.Background(), os.Args[1:], os.Getenv, os.Stdin, os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal starts a graceful stop, a second one kills.
	go func() { <-ctx.Done(); stop() }()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	var err error
	sub := ""
	if len(os.Args) > 1 {
		sub = os.Args[1]
	}
	switch sub {
	case "build-image":
		err = buildImage(ctx, os.Args[2:])
	case "validate":
		err = validate(os.Args[2:], os.Stdout, os.Stderr)
	case "plan":
		err = plan(os.Args[2:], os.Stdout, os.Stderr)
	case "test":
		err = test(ctx, os.Args[2:], os.Stdout, os.Stderr)
	case "run":
		err = runLocal(ctx, os.Args[2:], os.Stdout, os.Stderr)
	case cacher.Name:
		os.Exit(cacher.Main(ctx, os.Args[2:], os.Getenv, os.Stdin, os.Stderr))
	default:
		err = run(ctx, os.Args[1:], &logger)
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
	case errors.As(err, new(usageError)):
		fmt.Fprintln(os.Stderr, "baton-agent:", err)
		os.Exit(2)
	case err != nil && sub != "" && sub[0] != '-':
		fmt.Fprintln(os.Stderr, "baton-agent:", err)
		os.Exit(1)
	case err != nil:
		logger.Error("agent failed", slog.Any("err", err))
		os.Exit(1)
	}
}

type usageError struct{ error }

// run is the agent; it replaces *log with the logger the flags ask for.
func run(ctx context.Context, args []string, log **slog.Logger) error {
	cfg, err := parseConfig(args, os.Getenv)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	logger, err := newLogger(os.Stderr, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return usageError{err}
	}
	*log = logger
	id, err := agent.LoadOrCreateIdentity(cfg.StateDir)
	if err != nil {
		return err
	}
	logger = logger.With(slog.String("agent_id", id.ID))
	logger.Info("baton-agent starting", slog.String("version", version), slog.Int("protocol", protocol.ProtocolVersion),
		slog.String("config", cfg.String()))
	client, err := rpc.New(cfg.Server, id.ID, id.Signing)
	if err != nil {
		return usageError{err}
	}
	if cfg.H2C {
		client.UseH2C()
	}
	// The agent's own directories in the work dir: cacher sockets and
	// prepared sources (the executor keeps step workspaces in <id>/).
	cacherDir := filepath.Join(cfg.WorkDir, id.ID+"-cacher")
	if err := cacher.PrepareWorkDir(cacherDir); err != nil {
		return usageError{fmt.Errorf("--work-dir: %w", err)}
	}
	cacherBinary, err := cacher.Binary()
	if err != nil {
		logger.Warn("steps will have no cacher", slog.Any("err", err))
	} else if cfg.Executor == "docker" {
		// The daemon mounts cacher from its own host, which sees the work
		// dir at the same path but not necessarily this binary (an agent in
		// a container): steps get a copy in the work dir.
		if cacherBinary, err = cacher.StageBinary(cacherBinary, filepath.Join(cacherDir, "bin")); err != nil {
			return fmt.Errorf("--work-dir: %w", err)
		}
	}
	exec, closeExec, err := newExecutor(ctx, cfg, id.ID, logger)
	if err != nil {
		return err
	}
	defer closeExec()
	health := agent.NewHealth()
	metrics := agent.NewMetrics(version)
	if cfg.MetricsToken != "" {
		health.ServeMetrics(metrics, cfg.MetricsToken)
	}
	if cfg.HealthAddr != "" {
		ln, err := net.Listen("tcp", cfg.HealthAddr)
		if err != nil {
			return fmt.Errorf("--health-addr: %w", err)
		}
		probes := &http.Server{Handler: health, ReadHeaderTimeout: 5 * time.Second}
		go probes.Serve(ln)
		defer probes.Close()
		logger.Info("probes listening", slog.String("addr", ln.Addr().String()), slog.Bool("metrics", cfg.MetricsToken != ""))
	}
	a := &agent.Agent{
		Config: agent.Config{Name: cfg.Name, Version: version, Labels: cfg.Labels, Token: cfg.Token,
			ReserveWait: cfg.ReserveWait, StateDir: cfg.StateDir, LogLimit: cfg.LogLimit, HooksDir: cfg.HooksDir,
			SourcesDir: filepath.Join(cfg.WorkDir, id.ID+"-sources"), Sources: source.Options{AllowLocal: cfg.AllowLocalSources},
			WorkDir: cacherDir, CacherBinary: cacherBinary},
		Identity: id, Client: client, Executor: exec, Logger: logger, OnState: health.Set, OnControl: health.SetControl,
		Metrics: metrics,
	}
	err = a.Run(ctx)
	if errors.Is(err, agent.ErrDeleted) {
		logger.Info("deleted by the server; exiting")
		return nil
	}
	return err
}

// newExecutor builds the executor the operator chose.
func newExecutor(ctx context.Context, cfg Config, agentID string, logger *slog.Logger) (agent.Executor, func(), error) {
	if cfg.Executor == "shell" {
		logger.Warn("shell executor: steps run as host processes with this agent's user and NO isolation")
		exec, err := shell.New(shell.Options{WorkDir: filepath.Join(cfg.WorkDir, agentID+"-shell"), Logger: logger})
		return exec, func() {}, err
	}
	exec, err := docker.New(ctx, docker.Options{
		AgentID: agentID, DefaultImage: cfg.DefaultImage, Network: cfg.Network, AllowHostNetwork: cfg.AllowHostNetwork,
		ReadOnlyRoot: cfg.ReadOnlyRoot, User: cfg.User, CapAdd: cfg.CapAdd, WorkDir: cfg.WorkDir, Pull: cfg.Pull,
		Memory: cfg.Memory, NanoCPUs: cfg.NanoCPUs, PidsLimit: cfg.PidsLimit, Logger: logger,
	})
	if err != nil {
		return nil, nil, err
	}
	return exec, func() { exec.Close() }, nil
}

func buildImage(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("baton-agent build-image", flag.ContinueOnError)
	busybox := fs.String("busybox", "/bin/busybox", "path of a statically linked busybox")
	tag := fs.String("tag", docker.DefaultImage, "image tag to build")
	if err := fs.Parse(args); err != nil {
		return err
	}
	exec, err := docker.New(ctx, docker.Options{})
	if err != nil {
		return err
	}
	defer exec.Close()
	if err := docker.BuildBusyboxImage(ctx, exec.Client(), *busybox, *tag); err != nil {
		return err
	}
	fmt.Println("built", *tag)
	return nil
}
