package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/baton-ci/baton/server/secretbox"
	"github.com/baton-ci/baton/server/store"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// rotate-secrets-key re-seals every project secret with a new key, keeps
// the old one as secrets.key.old, finishes an interrupted rotation, and
// refuses while a server listens on --addr.
func TestRotateSecretsKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "secrets.key")
	oldKey, err := secretbox.LoadOrCreateKey(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	oldBox, _ := secretbox.New(oldKey)
	db, err := store.OpenSQLite(ctx, filepath.Join(dir, "baton.db"))
	if err != nil {
		t.Fatal(err)
	}
	values := map[[2]string]string{{"web", "TOKEN"}: "token-value-0123", {"web", "BATON_WEBHOOK_SECRET"}: "hook-secret-0123456", {"api", "KEY"}: "api-key-value-012"}
	for slot, v := range values {
		if err := db.PutSecret(ctx, slot[0], slot[1], oldBox.Seal(slot[0], slot[1], []byte(v))); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	// A server on the address: refused, nothing changed.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	err = rotateSecretsKey(ctx, Config{Addr: busy.Addr().String(), DataDir: dir}, &bytes.Buffer{})
	busy.Close()
	if err == nil || !strings.Contains(err.Error(), "stop every baton-server") {
		t.Fatalf("rotation with a server running: %v", err)
	}

	check := func(wantKey []byte) {
		t.Helper()
		box, _ := secretbox.New(wantKey)
		db, err := store.OpenSQLite(ctx, filepath.Join(dir, "baton.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		for slot, v := range values {
			sealed, err := db.SealedSecrets(ctx, slot[0], []string{slot[1]})
			if err != nil {
				t.Fatal(err)
			}
			got, err := box.Open(slot[0], slot[1], sealed[slot[1]])
			if err != nil || string(got) != v {
				t.Errorf("%v after rotation: %q, %v", slot, got, err)
			}
			if _, err := oldBox.Open(slot[0], slot[1], sealed[slot[1]]); err == nil {
				t.Errorf("%v still opens with the old key", slot)
			}
		}
	}
	var out bytes.Buffer
	if err := rotateSecretsKey(ctx, Config{Addr: freeAddr(t), DataDir: dir}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "re-sealed 3 project secrets") {
		t.Errorf("output %q", out.String())
	}
	newKey, err := secretbox.LoadOrCreateKey(keyPath)
	if err != nil || bytes.Equal(newKey, oldKey) {
		t.Fatalf("the key did not change: %v", err)
	}
	if kept, err := secretbox.LoadOrCreateKey(keyPath + ".old"); err != nil || !bytes.Equal(kept, oldKey) {
		t.Errorf("secrets.key.old is not the old key: %v", err)
	}
	if fi, err := os.Stat(keyPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("new key file: %v %v", fi, err)
	}
	check(newKey)

	// A rotation interrupted after the database was re-sealed: the key
	// files were not swapped yet. Running it again finishes it.
	os.Remove(keyPath + ".old")
	if err := os.Rename(keyPath, keyPath+".new"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, []byte(encodeKey(oldKey)), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := rotateSecretsKey(ctx, Config{Addr: freeAddr(t), DataDir: dir}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "re-sealed 0 project secrets") {
		t.Errorf("finishing an interrupted rotation: %q", out.String())
	}
	check(newKey)
}
