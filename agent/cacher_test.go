package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/baton-ci/baton/agent/cacher"
	"github.com/baton-ci/baton/shared/protocol"
)

func (f *fakeServer) PutArtifact(ctx context.Context, stepID string, lease protocol.LeaseRequest, key string, body io.Reader, size int64, sum string) (protocol.Artifact, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return protocol.Artifact{}, err
	}
	got := sha256.Sum256(b)
	if hex.EncodeToString(got[:]) != sum {
		return protocol.Artifact{}, statusError(400)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.artifacts == nil {
		f.artifacts = map[string][]byte{}
	}
	f.artifacts[key] = b
	return protocol.Artifact{Key: key, Size: int64(len(b)), SHA256: sum}, nil
}

func (f *fakeServer) GetArtifact(ctx context.Context, stepID string, lease protocol.LeaseRequest, key string) (io.ReadCloser, protocol.Artifact, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.artifacts[key]
	if !ok {
		return nil, protocol.Artifact{}, statusError(404)
	}
	sum := sha256.Sum256(b)
	return io.NopCloser(bytes.NewReader(b)), protocol.Artifact{Key: key, Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:])}, nil
}

func (f *fakeServer) DeleteArtifact(ctx context.Context, stepID string, lease protocol.LeaseRequest, key string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.artifacts[key]; !ok {
		return statusError(404)
	}
	delete(f.artifacts, key)
	return nil
}

// cacherExecutor plays a step that runs cacher commands against the
// socket its spec names, the way a container would.
type cacherExecutor struct {
	t    *testing.T
	seen *CacherMount
}

func (e *cacherExecutor) Execute(ctx context.Context, spec StepSpec, out io.Writer) (Outcome, error) {
	if spec.Cacher == nil {
		return Outcome{}, os.ErrInvalid
	}
	e.seen = spec.Cacher
	getenv := func(k string) string {
		if k == cacher.EnvSocket {
			return filepath.Join(spec.Cacher.SocketDir, cacher.SocketName)
		}
		return ""
	}
	run := func(args ...string) {
		if code := cacher.Main(ctx, args, getenv, nil, out); code != 0 {
			e.t.Errorf("cacher %q: exit %d", args, code)
		}
	}
	io.WriteString(out, "before: late-secret-value\n")
	run("mask", "late-secret-value")
	io.WriteString(out, "after: late-")
	io.WriteString(out, "secret-value\n")
	run("output", "from_cacher", "yes")
	src := filepath.Join(e.t.TempDir(), "f")
	os.WriteFile(src, []byte("artifact"), 0o600)
	run("put", "k", src)
	run("get", "k", src+".back")
	if b, _ := os.ReadFile(src + ".back"); string(b) != "artifact" {
		e.t.Errorf("got back %q", b)
	}
	return Outcome{Outputs: []byte("from_file=1")}, nil
}

// A step's cacher: mask hides a value in the rest of the log (not what was
// printed before), output joins the step's outputs, artifacts go through
// the server client, and the step's directory is gone afterwards.
func TestStepCacher(t *testing.T) {
	t.Parallel()
	f := newFakeServer(&protocol.Assignment{StepID: "s1", Attempt: 1, Command: "x"})
	exec := &cacherExecutor{t: t}
	a := testAgent(t, f, exec)
	a.Config.WorkDir = filepath.Join(t.TempDir(), "work")
	a.Config.CacherBinary = "/path/of/baton-agent"
	if err := cacher.PrepareWorkDir(a.Config.WorkDir); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- a.Run(ctx) }()
	waitCompleted(t, f, 1)
	cancel()
	<-errc
	f.mu.Lock()
	defer f.mu.Unlock()
	log := string(f.logs["s1"])
	if !strings.HasPrefix(log, "before: late-secret-value\n") || strings.Count(log, "late-secret-value") != 1 ||
		!strings.Contains(log, "after: ***\n") {
		t.Errorf("log %q: want the value masked after cacher mask only", log)
	}
	if r := f.results["s1"]; r.Outputs["from_cacher"] != "yes" || r.Outputs["from_file"] != "1" {
		t.Errorf("outputs %v", r.Outputs)
	}
	if exec.seen == nil || exec.seen.Binary != "/path/of/baton-agent" || filepath.Dir(exec.seen.SocketDir) != a.Config.WorkDir {
		t.Errorf("cacher mount %+v", exec.seen)
	}
	if entries, _ := os.ReadDir(a.Config.WorkDir); len(entries) != 0 {
		t.Errorf("work dir holds %v after the step", entries)
	}
}
