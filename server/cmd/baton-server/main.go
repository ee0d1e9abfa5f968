// Command baton-server runs the Baton server: the API, the scheduler's
// dispatch endpoints, the embedded UI and the database.
//
//	baton-server [flags]
//	baton-server rotate-secrets-key [flags]   (every replica stopped)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/baton-ci/baton/server/gcpace"
	"github.com/baton-ci/baton/shared/protocol"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	// Everything the server writes (database, WAL, keys) is for its user only.
	syscall.Umask(0o077)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal starts a graceful stop, a second one kills.
	go func() { <-ctx.Done(); stop() }()
	if len(os.Args) > 1 && os.Args[1] == "user" {
		if err := userCommand(ctx, os.Args[2:], os.Getenv, os.Stdin, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "baton-server user:", err)
			os.Exit(2)
		}
		return
	}
	args, rotate := os.Args[1:], false
	if len(args) > 0 && args[0] == "rotate-secrets-key" {
		args, rotate = args[1:], true
	}
	cfg, err := parseConfig(args, os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "baton-server:", err)
		os.Exit(2)
	}
	if rotate {
		if err := rotateSecretsKey(ctx, cfg, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "baton-server rotate-secrets-key:", err)
			os.Exit(1)
		}
		return
	}
	logger, _ := newLogger(os.Stderr, cfg.LogFormat, cfg.LogLevel) // checked by Validate
	logger.Info("baton-server starting", slog.String("version", version), slog.Int("protocol", protocol.ProtocolVersion))
	// The collector lets the heap grow by at least 64 MiB (docs/performance.md).
	go gcpace.Run(ctx, 64<<20, time.Second)
	m := &Main{Config: cfg, Logger: logger, Out: os.Stdout, Version: version}
	if err := m.Run(ctx); err != nil {
		logger.Error("server failed", slog.Any("err", err))
		os.Exit(1)
	}
}
