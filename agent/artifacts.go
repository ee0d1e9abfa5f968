package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/baton-ci/baton/shared/artifact"
	"github.com/baton-ci/baton/shared/protocol"
)

// ArtifactsMount is where a step finds its artifacts directory: what it
// leaves there is stored as artifacts of the run when it ends, under
// "<step name>/<path>" (seed 001's /job/artifacts).
const ArtifactsMount = "/job/artifacts"

// maxArtifactFiles bounds how many files one step's directory may hand in.
const maxArtifactFiles = 1000

// newArtifactsDir makes a step's empty artifacts directory on the host,
// under dir, writable by whatever user the step runs as (the directory's
// parent is the agent's own).
func newArtifactsDir(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	d, err := os.MkdirTemp(dir, "artifacts-")
	if err != nil {
		return "", err
	}
	return d, os.Chmod(d, 0o777)
}

// uploadArtifacts stores the regular files under dir as artifacts of the
// step's run, streamed with their SHA-256; links and other special files
// are skipped (a step must not hand in the host's files through them). It
// writes one line about what it did to out.
func (a *Agent) uploadArtifacts(ctx context.Context, asg *protocol.Assignment, dir string, out io.Writer) {
	lease := protocol.LeaseRequest{Attempt: asg.Attempt, LeaseID: asg.LeaseID}
	files, bytes := 0, int64(0)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !d.Type().IsRegular() {
			return err
		}
		if files == maxArtifactFiles {
			return fmt.Errorf("more than %d files; the rest are not stored", maxArtifactFiles)
		}
		rel, _ := filepath.Rel(dir, p)
		key := path.Join(asg.StepName, filepath.ToSlash(rel))
		if err := artifact.ValidateKey(key); err != nil {
			fmt.Fprintf(out, "baton: artifact %s not stored: %v\n", rel, err)
			return nil
		}
		n, err := a.putFile(ctx, asg.StepID, lease, key, p)
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		files, bytes = files+1, bytes+n
		return nil
	})
	if files > 0 || err != nil {
		fmt.Fprintf(out, "baton: stored %d artifact(s) from %s, %d bytes, under %s/", files, ArtifactsMount, bytes, asg.StepName)
		if err != nil {
			fmt.Fprintf(out, "; stopped: %v", err)
		}
		fmt.Fprintln(out)
	}
}

// putFile streams one file to the server with its checksum.
func (a *Agent) putFile(ctx context.Context, stepID string, lease protocol.LeaseRequest, key, p string) (int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	h := sha256.New()
	size, err := io.Copy(h, f)
	if err != nil {
		return 0, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	_, err = a.Client.PutArtifact(ctx, stepID, lease, key, io.LimitReader(f, size), size, hex.EncodeToString(h.Sum(nil)))
	return size, err
}
