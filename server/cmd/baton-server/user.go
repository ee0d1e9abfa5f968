package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/server/api"
	"github.com/baton-ci/baton/server/store"
)

// userCommand manages web UI users: baton-server user add [--role admin|viewer] NAME,
// with the password read from stdin (one line). It opens the database the
// server would (--data-dir or --db, or their environment variables).
func userCommand(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, out io.Writer) error {
	if len(args) == 0 || args[0] != "add" {
		return errors.New("usage: baton-server user add [--role admin|viewer] [--data-dir DIR | --db URL] NAME (password on stdin)")
	}
	fs := flag.NewFlagSet("baton-server user add", flag.ContinueOnError)
	role := fs.String("role", "admin", "the user's role: admin (may change anything) or viewer (reads only)")
	dataDir := fs.String("data-dir", envOr(getenv, "BATON_DATA_DIR", "baton-data"), "the server's data directory (BATON_DATA_DIR)")
	dsn := fs.String("db", getenv("BATON_DB"), "PostgreSQL URL, if the server uses one (BATON_DB)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("give exactly one user NAME")
	}
	name := fs.Arg(0)
	if !api.ValidUserName(name) {
		return fmt.Errorf("user name %q: 1 to 64 letters, digits, '.', '_', '-' or '@'", name)
	}
	if !server.Role(*role).Valid() {
		return fmt.Errorf("role %q: use admin or viewer", *role)
	}
	fmt.Fprintf(out, "Password for %s (one line on stdin, at least %d characters): ", name, api.MinPasswordLength)
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return fmt.Errorf("read password: %w", err)
	}
	fmt.Fprintln(out)
	hash, err := api.HashPassword(strings.TrimRight(line, "\r\n"))
	if err != nil {
		return err
	}
	var db *store.DB
	if *dsn == "" {
		db, err = store.OpenSQLite(ctx, filepath.Join(*dataDir, "baton.db"))
	} else {
		db, err = store.OpenPostgres(ctx, *dsn, 0)
	}
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.CreateUser(ctx, &server.User{Name: name, Role: server.Role(*role), PasswordHash: hash}); err != nil {
		return err
	}
	fmt.Fprintf(out, "User %s (%s) created: log in to the web UI.\n", name, *role)
	return nil
}

func envOr(getenv func(string) string, name, def string) string {
	if v := getenv(name); v != "" {
		return v
	}
	return def
}
