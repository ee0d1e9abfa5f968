// Command baton-server runs the Baton server: the API, the scheduler's
// dispatch endpoints, the embedded UI and the database.
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
	cfg, err := parseConfig(os.Args[1:], os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "baton-server:", err)
		os.Exit(2)
	}
	logger, _ := newLogger(os.Stderr, cfg.LogFormat, cfg.LogLevel) // checked by Validate
	logger.Info("baton-server starting", slog.String("version", version), slog.Int("protocol", protocol.ProtocolVersion))
	m := &Main{Config: cfg, Logger: logger, Out: os.Stdout, Version: version}
	if err := m.Run(ctx); err != nil {
		logger.Error("server failed", slog.Any("err", err))
		os.Exit(1)
	}
}
