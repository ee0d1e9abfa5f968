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
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	cfg, err := parseConfig(os.Args[1:], os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "baton-server:", err)
		os.Exit(2)
	}
	m := &Main{Config: cfg, Logger: logger, Out: os.Stdout}
	if err := m.Run(ctx); err != nil {
		logger.Error("server failed", slog.Any("err", err))
		os.Exit(1)
	}
}
