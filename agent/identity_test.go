package agent

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestIdentityIsCreatedOnceAndReused(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "state")
	first, err := LoadOrCreateIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadOrCreateIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if first.ID != again.ID || !bytes.Equal(first.SigningPublic(), again.SigningPublic()) || !bytes.Equal(first.HPKEPublic(), again.HPKEPublic()) {
		t.Fatalf("identity changed across loads: %s vs %s", first.ID, again.ID)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, identityFileName): 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %o, want %o", path, fi.Mode().Perm(), want)
		}
	}
	other, err := LoadOrCreateIdentity(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if other.ID == first.ID || bytes.Equal(other.SigningPublic(), first.SigningPublic()) {
		t.Fatal("two state dirs produced the same identity")
	}
}

func TestCorruptIdentityIsAnError(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, identityFileName), []byte(`{"id":"x"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateIdentity(dir); err == nil {
		t.Fatal("a corrupt identity file was accepted")
	}
}
