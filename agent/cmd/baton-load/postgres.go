package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
)

// postgresSchema makes a schema of its own for one server in the database
// of dsn, and returns the DSN that points the server at it and a function
// that drops it. The server's tables then start empty on every run.
func postgresSchema(ctx context.Context, dsn string) (string, func() error, error) {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", nil, fmt.Errorf("-db: want a postgres:// URL")
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema := "baton_load_" + hex.EncodeToString(b)
	exec := func(sql string) error {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return fmt.Errorf("-db: %w", err)
		}
		defer conn.Close(context.Background())
		_, err = conn.Exec(ctx, sql)
		return err
	}
	if err := exec("CREATE SCHEMA " + schema); err != nil {
		return "", nil, fmt.Errorf("-db: create schema %s: %w", schema, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), func() error { return exec("DROP SCHEMA " + schema + " CASCADE") }, nil
}

// startServerOn starts the server on SQLite in dir, or on a fresh schema
// of cfg.DB; stop stops it and drops the schema.
func startServerOn(ctx context.Context, cfg Config, dir string) (*serverProc, func() error, error) {
	if cfg.DB == "" {
		srv, err := startServer(ctx, cfg.Server, dir)
		if err != nil {
			return nil, nil, err
		}
		return srv, srv.Stop, nil
	}
	dsn, drop, err := postgresSchema(ctx, cfg.DB)
	if err != nil {
		return nil, nil, err
	}
	srv, err := startServer(ctx, cfg.Server, dir, "--db", dsn)
	if err != nil {
		drop()
		return nil, nil, err
	}
	return srv, func() error {
		err := srv.Stop()
		if derr := drop(); derr != nil && err == nil {
			err = derr
		}
		return err
	}, nil
}

// dbName names the database a workload runs on.
func (c Config) dbName() string {
	if c.DB == "" {
		return "SQLite"
	}
	return "PostgreSQL"
}
