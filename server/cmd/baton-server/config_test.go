package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/baton-ci/baton/server/store"
)

func TestConfigDatabase(t *testing.T) {
	t.Parallel()
	env := func(vars map[string]string) func(string) string {
		return func(k string) string { return vars[k] }
	}
	const dsn = "postgres://baton:s3cret@db:5432/baton?sslmode=disable"
	secretFile := filepath.Join(t.TempDir(), "db")
	if err := os.WriteFile(secretFile, []byte(dsn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name       string
		args       []string
		env        map[string]string
		want       string
		wantErr    string
		wantString string // in String()
	}{
		{name: "default is SQLite", want: ""},
		{name: "env", env: map[string]string{"BATON_DB": dsn}, want: dsn},
		{name: "file", env: map[string]string{"BATON_DB_FILE": secretFile}, want: dsn},
		{name: "flag wins", args: []string{"--db", "postgresql://x@h/d"}, env: map[string]string{"BATON_DB": dsn}, want: "postgresql://x@h/d"},
		{name: "not postgres", args: []string{"--db", "mysql://h/d"}, wantErr: "--db must be empty"},
		{name: "connections", args: []string{"--db", dsn, "--db-max-conns", "12"}, want: dsn, wantString: "db-max-conns=12"},
		{name: "connections by default", args: []string{"--db", dsn}, want: dsn, wantString: fmt.Sprintf("db-max-conns=%d", store.DefaultPostgresConns())},
		{name: "negative connections", args: []string{"--db", dsn, "--db-max-conns", "-1"}, wantErr: "--db-max-conns must not be negative"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := parseConfig(c.args, env(c.env))
			if err == nil {
				err = cfg.Validate()
			}
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil || cfg.DB != c.want {
				t.Fatalf("DB = %q, %v; want %q", cfg.DB, err, c.want)
			}
			if s := cfg.String(); strings.Contains(s, "s3cret") || !strings.Contains(s, c.wantString) {
				t.Errorf("String() shows the password, or lacks %q: %s", c.wantString, s)
			}
		})
	}
}
