package main

import (
	"io"
	"log/slog"

	"github.com/baton-ci/baton/shared/logging"
)

// newLogger returns the logger the flags ask for (shared/logging).
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	return logging.New(w, format, level)
}
