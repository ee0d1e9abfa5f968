// Package artifacts keeps artifact content on the file system, one
// directory per run: <root>/<run id>/<sha256(key) in hex>. Content is
// streamed into a temporary file in the same directory, synced, and renamed
// over the final name only when complete, so a reader never sees half an
// artifact. What is known about each artifact (size, checksum) is kept by
// the store; this package only holds bytes.
package artifacts

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// stagingPrefix starts the name of a temporary file being written.
const stagingPrefix = ".staging-"

// Dir is a directory of artifact content.
type Dir struct {
	root string
}

// Open creates root (0700) if needed and removes the temporary files that
// an interrupted server left behind.
func Open(root string) (*Dir, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("artifacts dir: %w", err)
	}
	runs, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("artifacts dir: %w", err)
	}
	for _, run := range runs {
		if !run.IsDir() {
			continue
		}
		leftovers, _ := filepath.Glob(filepath.Join(root, run.Name(), stagingPrefix+"*"))
		for _, f := range leftovers {
			os.Remove(f)
		}
	}
	return &Dir{root: root}, nil
}

// runDir is the directory of a run's artifacts.
func (d *Dir) runDir(runID string) (string, error) {
	if runID == "" || strings.ContainsAny(runID, `/\`) || !filepath.IsLocal(runID) {
		return "", fmt.Errorf("run id %q cannot name a directory", runID)
	}
	return filepath.Join(d.root, runID), nil
}

// path is where the content of key lives. The name is a hash of the key,
// so no key can name anything outside its run's directory.
func (d *Dir) path(runID, key string) (string, error) {
	dir, err := d.runDir(runID)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(dir, hex.EncodeToString(sum[:])), nil
}

// Stage streams r into a new temporary file of the run and returns its
// name (for Commit or Discard), its size and its SHA-256 in hex. The file
// is synced before Stage returns; on any error it is removed.
func (d *Dir) Stage(runID string, r io.Reader) (string, int64, string, error) {
	dir, err := d.runDir(runID)
	if err != nil {
		return "", 0, "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", 0, "", fmt.Errorf("artifact dir of run %s: %w", runID, err)
	}
	f, err := os.CreateTemp(dir, stagingPrefix+"*")
	if err != nil {
		return "", 0, "", fmt.Errorf("stage artifact: %w", err)
	}
	h := sha256.New()
	buf := make([]byte, 256<<10)
	n, err := io.CopyBuffer(io.MultiWriter(f, h), r, buf)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", 0, "", fmt.Errorf("stage artifact: %w", err)
	}
	return filepath.Base(f.Name()), n, hex.EncodeToString(h.Sum(nil)), nil
}

// staged returns the path of a staged file of the run.
func (d *Dir) staged(runID, tmp string) (string, error) {
	dir, err := d.runDir(runID)
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(tmp, stagingPrefix) || strings.ContainsAny(tmp, `/\`) {
		return "", fmt.Errorf("%q is not a staged artifact", tmp)
	}
	return filepath.Join(dir, tmp), nil
}

// Commit makes a staged file the content of key, replacing what was
// there, and syncs the directory so the rename survives a crash.
func (d *Dir) Commit(runID, tmp, key string) error {
	from, err := d.staged(runID, tmp)
	if err != nil {
		return err
	}
	to, err := d.path(runID, key)
	if err != nil {
		return err
	}
	if err := os.Rename(from, to); err != nil {
		return fmt.Errorf("store artifact %q: %w", key, err)
	}
	if dir, err := os.Open(filepath.Dir(to)); err == nil {
		dir.Sync()
		dir.Close()
	}
	return nil
}

// Discard removes a staged file.
func (d *Dir) Discard(runID, tmp string) error {
	p, err := d.staged(runID, tmp)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("discard staged artifact: %w", err)
	}
	return nil
}

// Open opens the content of key; an error wrapping fs.ErrNotExist when
// there is none.
func (d *Dir) Open(runID, key string) (io.ReadCloser, error) {
	p, err := d.path(runID, key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("open artifact %q: %w", key, err)
	}
	return f, nil
}

// Remove deletes the content of key; it is not an error if there is none.
func (d *Dir) Remove(runID, key string) error {
	p, err := d.path(runID, key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove artifact %q: %w", key, err)
	}
	return nil
}

// RemoveRun deletes every artifact of a run.
func (d *Dir) RemoveRun(runID string) error {
	dir, err := d.runDir(runID)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove artifacts of run %s: %w", runID, err)
	}
	return nil
}
