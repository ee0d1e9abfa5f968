package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"

	"github.com/baton-ci/baton/server/secretbox"
	"github.com/baton-ci/baton/server/store"
)

// rotateSecretsKey replaces <data-dir>/secrets.key with a new random key
// and re-seals every project secret with it, in one transaction. Every
// server replica must be stopped: a running one keeps the old key in
// memory. It can be run again after a crash: a pending new key
// (secrets.key.new) is reused, and secrets it already opens are left as
// they are. The old key is kept as secrets.key.old until the operator
// removes it (backups made before the rotation need it).
func rotateSecretsKey(ctx context.Context, cfg Config, out io.Writer) error {
	if ln, err := net.Listen("tcp", cfg.Addr); err != nil {
		return fmt.Errorf("%s is in use: stop every baton-server (all replicas) before rotating the secrets key: %w", cfg.Addr, err)
	} else {
		ln.Close()
	}
	path := filepath.Join(cfg.DataDir, "secrets.key")
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("no secrets key to rotate: %w", err)
	}
	oldKey, err := secretbox.LoadOrCreateKey(path)
	if err != nil {
		return err
	}
	newPath := path + ".new"
	newKey, err := readOrCreateKey(newPath)
	if err != nil {
		return err
	}
	oldBox, err := secretbox.New(oldKey)
	if err != nil {
		return err
	}
	newBox, err := secretbox.New(newKey)
	if err != nil {
		return err
	}
	var db *store.DB
	if cfg.DB == "" {
		db, err = store.OpenSQLite(ctx, filepath.Join(cfg.DataDir, "baton.db"))
	} else {
		db, err = store.OpenPostgres(ctx, cfg.DB, cfg.DBMaxConns)
	}
	if err != nil {
		return err
	}
	defer db.Close()
	n, err := db.ResealSecrets(ctx, func(project, name string, sealed []byte) ([]byte, error) {
		if _, err := newBox.Open(project, name, sealed); err == nil {
			return sealed, nil // re-sealed by an earlier, interrupted rotation
		}
		value, err := oldBox.Open(project, name, sealed)
		if err != nil {
			return nil, fmt.Errorf("%w: nothing was changed", err)
		}
		return newBox.Seal(project, name, value), nil
	})
	if err != nil {
		return fmt.Errorf("re-seal the project secrets: %w", err)
	}
	if err := os.Rename(path, path+".old"); err != nil {
		return fmt.Errorf("keep the old key: %w (the secrets are sealed with %s now: move it to %s)", err, newPath, path)
	}
	if err := os.Rename(newPath, path); err != nil {
		return fmt.Errorf("install the new key: %w (the secrets are sealed with %s now: move it to %s)", err, newPath, path)
	}
	fmt.Fprintf(out, "re-sealed %d project secrets with a new key in %s; the old key is in %s.old.\n", n, path, path)
	fmt.Fprintln(out, "Copy the new secrets.key to every replica's data directory before starting them; remove secrets.key.old once no backup needs it.")
	return nil
}

// readOrCreateKey reads a pending key file or creates one (0600).
func readOrCreateKey(path string) ([]byte, error) {
	if _, err := os.Stat(path); err == nil {
		return secretbox.LoadOrCreateKey(path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	key := make([]byte, 32)
	rand.Read(key)
	if err := writeNew(path, []byte(encodeKey(key))); err != nil {
		return nil, fmt.Errorf("new secrets key: %w", err)
	}
	return key, nil
}

func encodeKey(key []byte) string { return base64.StdEncoding.EncodeToString(key) + "\n" }
