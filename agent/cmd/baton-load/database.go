package main

import (
	"context"
	"fmt"
	"strings"
)

// startServerOn starts the server on SQLite in dir, or on the PostgreSQL
// database of cfg.DB, which should be empty (a database, or a schema named
// by search_path): the driver does not clean it, since agent/ may not
// depend on a PostgreSQL client.
func startServerOn(ctx context.Context, cfg Config, dir string) (*serverProc, func() error, error) {
	var args []string
	if cfg.DB != "" {
		if !strings.HasPrefix(cfg.DB, "postgres://") && !strings.HasPrefix(cfg.DB, "postgresql://") {
			return nil, nil, fmt.Errorf("-db: want a postgres:// URL")
		}
		args = []string{"--db", cfg.DB}
	}
	srv, err := startServer(ctx, cfg.Server, dir, args...)
	if err != nil {
		return nil, nil, err
	}
	return srv, srv.Stop, nil
}

// dbName names the database a workload runs on.
func (c Config) dbName() string {
	if c.DB == "" {
		return "SQLite"
	}
	return "PostgreSQL"
}
