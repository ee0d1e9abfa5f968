// Command baton-agent runs Baton steps on this host in Docker containers.
//
//	baton-agent --server URL --token TOKEN --state-dir DIR --name NAME
//	baton-agent build-image [--busybox PATH] [--tag TAG]
//	baton-agent validate RUNBOOK.yml...
//	baton-agent plan [--param NAME=VALUE]... RUNBOOK.yml
//	baton-agent test [--stubs FILE] [--param NAME=VALUE]... [--expect STATE] RUNBOOK.yml
//	baton-agent run [--param NAME=VALUE]... [--parallel N] RUNBOOK.yml
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
	"syscall"
	"time"

	"github.com/baton-ci/baton/agent"
	"github.com/baton-ci/baton/agent/docker"
	"github.com/baton-ci/baton/agent/rpc"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
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
	default:
		err = run(ctx, os.Args[1:], logger)
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

func run(ctx context.Context, args []string, logger *slog.Logger) error {
	cfg, err := parseConfig(args, os.Getenv)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	id, err := agent.LoadOrCreateIdentity(cfg.StateDir)
	if err != nil {
		return err
	}
	logger = logger.With(slog.String("agent_id", id.ID))
	logger.Info("baton-agent starting", slog.String("version", version), slog.String("config", cfg.String()))
	client, err := rpc.New(cfg.Server, id.ID, id.Signing)
	if err != nil {
		return usageError{err}
	}
	exec, err := docker.New(ctx, docker.Options{
		AgentID: id.ID, DefaultImage: cfg.DefaultImage, Network: cfg.Network, Pull: cfg.Pull,
		Memory: cfg.Memory, NanoCPUs: cfg.NanoCPUs, PidsLimit: cfg.PidsLimit, Logger: logger,
	})
	if err != nil {
		return err
	}
	defer exec.Close()
	health := agent.NewHealth()
	if cfg.HealthAddr != "" {
		ln, err := net.Listen("tcp", cfg.HealthAddr)
		if err != nil {
			return fmt.Errorf("--health-addr: %w", err)
		}
		probes := &http.Server{Handler: health, ReadHeaderTimeout: 5 * time.Second}
		go probes.Serve(ln)
		defer probes.Close()
		logger.Info("probes listening", slog.String("addr", ln.Addr().String()))
	}
	a := &agent.Agent{
		Config: agent.Config{Name: cfg.Name, Version: version, Labels: cfg.Labels, Token: cfg.Token,
			ReserveWait: cfg.ReserveWait, StateDir: cfg.StateDir, LogLimit: cfg.LogLimit, HooksDir: cfg.HooksDir},
		Identity: id, Client: client, Executor: exec, Logger: logger, OnState: health.Set, OnControl: health.SetControl,
	}
	err = a.Run(ctx)
	if errors.Is(err, agent.ErrDeleted) {
		logger.Info("deleted by the server; exiting")
		return nil
	}
	return err
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
