package artifacts_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/baton-ci/baton/server/artifacts"
)

func read(t *testing.T, d *artifacts.Dir, run, key string) string {
	t.Helper()
	f, err := d.Open(run, key)
	if err != nil {
		t.Fatalf("Open(%s): %v", key, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestStageCommitOpenRemove(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "artifacts")
	d, err := artifacts.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	content := bytes.Repeat([]byte("0123456789"), 100_000)
	tmp, size, sum, err := d.Stage("run-1", bytes.NewReader(content))
	want := sha256.Sum256(content)
	if err != nil || size != int64(len(content)) || sum != hex.EncodeToString(want[:]) {
		t.Fatalf("Stage = %q %d %s %v", tmp, size, sum, err)
	}
	// Nothing is visible under the key before Commit.
	if _, err := d.Open("run-1", "dist/app"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open before Commit: %v, want not exist", err)
	}
	if err := d.Commit("run-1", tmp, "dist/app"); err != nil {
		t.Fatal(err)
	}
	if got := read(t, d, "run-1", "dist/app"); got != string(content) {
		t.Fatalf("read back %d bytes, want %d", len(got), len(content))
	}
	// Replacing, and the key maps to a hashed name inside the run's directory.
	tmp, _, _, _ = d.Stage("run-1", strings.NewReader("v2"))
	if err := d.Commit("run-1", tmp, "dist/app"); err != nil {
		t.Fatal(err)
	}
	if got := read(t, d, "run-1", "dist/app"); got != "v2" {
		t.Fatalf("after replace: %q", got)
	}
	name := sha256.Sum256([]byte("dist/app"))
	if _, err := os.Stat(filepath.Join(root, "run-1", hex.EncodeToString(name[:]))); err != nil {
		t.Errorf("content not at <root>/<run>/<sha256(key)>: %v", err)
	}
	if _, err := d.Open("run-2", "dist/app"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("another run sees the artifact: %v", err)
	}
	// Discard and staging leftovers.
	tmp, _, _, _ = d.Stage("run-1", strings.NewReader("dropped"))
	if err := d.Discard("run-1", tmp); err != nil {
		t.Fatal(err)
	}
	leftover, _, _, _ := d.Stage("run-1", strings.NewReader("interrupted"))
	if _, err := artifacts.Open(root); err != nil { // a restart
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "run-1", leftover)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a staged file survived a restart: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Join(root, "run-1"))
	if len(entries) != 1 {
		t.Errorf("run dir holds %d entries, want only the artifact", len(entries))
	}
	// Bad names never reach the file system.
	for _, bad := range []struct{ run, tmp string }{{"../x", ".staging-1"}, {"run-1", "../../etc/passwd"}, {"run-1", "not-staged"}} {
		if err := d.Commit(bad.run, bad.tmp, "k"); err == nil {
			t.Errorf("Commit(%q, %q) was allowed", bad.run, bad.tmp)
		}
	}
	if err := d.Remove("run-1", "dist/app"); err != nil {
		t.Fatal(err)
	}
	if err := d.Remove("run-1", "dist/app"); err != nil {
		t.Errorf("removing a missing artifact: %v", err)
	}
	if err := d.RemoveRun("run-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "run-1")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("run dir still there: %v", err)
	}
}

// A failing reader leaves nothing behind.
func TestStageReadError(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	d, _ := artifacts.Open(root)
	boom := errors.New("client went away")
	if _, _, _, err := d.Stage("run-1", io.MultiReader(strings.NewReader("partial"), errReader{boom})); !errors.Is(err, boom) {
		t.Fatalf("Stage = %v, want the read error", err)
	}
	entries, _ := os.ReadDir(filepath.Join(root, "run-1"))
	if len(entries) != 0 {
		t.Errorf("a failed stage left %d files", len(entries))
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
