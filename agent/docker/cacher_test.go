package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/baton-ci/baton/agent"
	"github.com/baton-ci/baton/agent/cacher"
	"github.com/baton-ci/baton/shared/mask"
	"github.com/baton-ci/baton/shared/protocol"
	"github.com/baton-ci/baton/shared/runbook"
)

var (
	agentBinOnce sync.Once
	agentBin     string
	agentBinErr  error
)

// staticAgent builds the baton-agent binary once, statically linked, as
// steps get it.
func staticAgent(t *testing.T) string {
	t.Helper()
	agentBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "baton-cacher-bin")
		if err != nil {
			agentBinErr = err
			return
		}
		agentBin = filepath.Join(dir, "baton-agent")
		build := exec.Command("go", "build", "-o", agentBin, "./agent/cmd/baton-agent")
		build.Dir = "../.."
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			agentBinErr = fmt.Errorf("build baton-agent: %v\n%s", err, out)
		}
	})
	if agentBinErr != nil {
		t.Fatal(agentBinErr)
	}
	return agentBin
}

// memArtifacts is the server's artifact API in memory.
type memArtifacts struct {
	mu    sync.Mutex
	files map[string][]byte
}

type notFound string

func (e notFound) Error() string   { return fmt.Sprintf("no artifact %q in this run", string(e)) }
func (e notFound) HTTPStatus() int { return 404 }

func (m *memArtifacts) PutArtifact(ctx context.Context, stepID string, lease protocol.LeaseRequest, key string, body io.Reader, size int64, sum string) (protocol.Artifact, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return protocol.Artifact{}, err
	}
	got := sha256.Sum256(b)
	if hex.EncodeToString(got[:]) != sum {
		return protocol.Artifact{}, fmt.Errorf("checksum mismatch")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.files[key] = b
	return protocol.Artifact{Key: key, Size: int64(len(b)), SHA256: sum}, nil
}

func (m *memArtifacts) GetArtifact(ctx context.Context, stepID string, lease protocol.LeaseRequest, key string) (io.ReadCloser, protocol.Artifact, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.files[key]
	if !ok {
		return nil, protocol.Artifact{}, notFound(key)
	}
	sum := sha256.Sum256(b)
	return io.NopCloser(bytes.NewReader(b)), protocol.Artifact{Key: key, Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:])}, nil
}

func (m *memArtifacts) DeleteArtifact(ctx context.Context, stepID string, lease protocol.LeaseRequest, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.files[key]; !ok {
		return notFound(key)
	}
	delete(m.files, key)
	return nil
}

// cacherStep runs command in a container with a cacher served as the
// agent serves it, output masked as the agent masks it.
func cacherStep(t *testing.T, e *Executor, image, command string) (agent.Outcome, string, []byte) {
	t.Helper()
	work := filepath.Join(t.TempDir(), "w")
	if err := cacher.PrepareWorkDir(work); err != nil {
		t.Fatal(err)
	}
	masker := mask.New(nil)
	srv, err := cacher.Start(work, cacher.Step{StepID: "s", Artifacts: &memArtifacts{files: map[string][]byte{}}, Masker: masker})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	s := spec(command, nil)
	s.Image = image
	s.Cacher = &agent.CacherMount{Binary: staticAgent(t), SocketDir: srv.Dir()}
	var out bytes.Buffer
	w := masker.NewWriter(&out)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := e.Execute(ctx, s, w)
	w.Flush()
	if err != nil {
		t.Fatalf("execute: %v\n%s", err, out.String())
	}
	return res, out.String(), cacher.JoinOutputs(res.Outputs, srv.Outputs())
}

// Inside a container with no network, cacher is on PATH and reaches the
// agent through its socket: files make the round trip intact, bad keys are
// refused, mask hides what is printed afterwards and output sets outputs.
func TestCacherInContainer(t *testing.T) {
	t.Parallel()
	e := newExecutor(t, Options{})
	res, out, outputs := cacherStep(t, e, "", `set -e
ls /sys/class/net | tr '\n' ' '; echo
command -v cacher
echo "path $PATH"
head -c 3000000 /dev/urandom > /tmp/f
sha256sum /tmp/f | cut -d' ' -f1 > /tmp/want
cacher put dist/f.bin /tmp/f
cacher get dist/f.bin /tmp/back
[ "$(sha256sum /tmp/back | cut -d' ' -f1)" = "$(cat /tmp/want)" ] && echo "round trip ok"
for key in ../x /etc/passwd; do
  if cacher put "$key" /tmp/f 2>/tmp/err; then echo "put $key: accepted"; else echo "put $key: exit $?: $(cat /tmp/err)"; fi
done
cacher get missing /tmp/m 2>/tmp/err || echo "get missing: exit $?: $(cat /tmp/err)"
cacher delete dist/f.bin 2>/dev/null && echo deleted
cacher mask short 2>/tmp/err || echo "mask short: exit $?: $(cat /tmp/err)"
cacher mask runtime-s3cr3t-value
echo "printed: runtime-s3cr3t-value"
cacher output version 4.5.6
echo "from_file=yes" >> "$BATON_OUTPUT"
`)
	if res.ExitCode != 0 {
		t.Fatalf("exit %d:\n%s", res.ExitCode, out)
	}
	for _, want := range []string{
		"lo \n", // network none
		"/baton/bin/cacher\n",
		"path /baton/bin:/bin\n", // the image's PATH, after cacher's
		"round trip ok\n",
		`put ../x: exit 1: cacher: put: artifact key "../x": a path segment must not be ".."` + "\n",
		`put /etc/passwd: exit 1: cacher: put: artifact key "/etc/passwd": it must be relative, not start with '/'` + "\n",
		`get missing: exit 1: cacher: get: no artifact "missing" in this run` + "\n",
		"deleted\n",
		"mask short: exit 1: cacher: mask: refused: the value has 5 characters; values shorter than 6 are not masked",
		"printed: ***\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "runtime-s3cr3t-value") {
		t.Errorf("the masked value shows:\n%s", out)
	}
	got, problems := runbook.ParseOutputs(outputs)
	if got["version"] != "4.5.6" || got["from_file"] != "yes" || len(problems) > 0 {
		t.Errorf("outputs %v %v", got, problems)
	}
}

// A step running as a user other than the agent's (and without
// capabilities) can still use cacher; the mounts are read-only.
func TestCacherAsNonRootUser(t *testing.T) {
	t.Parallel()
	e := newExecutor(t, Options{})
	const image = "baton/busybox-nobody:test"
	dockerfile := "FROM " + testImage + "\nRUN [\"/bin/busybox\", \"chmod\", \"1777\", \"/tmp\"]\nUSER 65534:65534\n"
	if err := buildFromDockerfile(t, e, image, dockerfile); err != nil {
		t.Fatal(err)
	}
	res, out, _ := cacherStep(t, e, image, `id -u
echo hello > /tmp/f && cacher put k /tmp/f && cacher get k /tmp/g && cat /tmp/g
touch /baton/run/x 2>/dev/null && echo "socket dir writable" || echo "socket dir read-only"
touch /baton/bin/cacher 2>/dev/null && echo "binary writable" || echo "binary read-only"`)
	if res.ExitCode != 0 || !strings.HasPrefix(out, "65534\n") || !strings.Contains(out, "hello\n") ||
		!strings.Contains(out, "socket dir read-only") || !strings.Contains(out, "binary read-only") {
		t.Errorf("exit %d:\n%s", res.ExitCode, out)
	}
}

// buildFromDockerfile builds tag from a Dockerfile alone (its base image is
// local: no registry).
func buildFromDockerfile(t *testing.T, e *Executor, tag, dockerfile string) error {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(dockerfile))})
	tw.Write([]byte(dockerfile))
	if err := tw.Close(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := e.cli.ImageBuild(ctx, &buf, client.ImageBuildOptions{Tags: []string{tag}, Remove: true, ForceRemove: true})
	if err != nil {
		return err
	}
	defer res.Body.Close()
	return buildResult(res.Body)
}

// The container gets the binary and the socket directory as read-only
// binds, the socket's path and cacher first on PATH; a PATH the step sets
// wins over the image's; without a cacher nothing is added.
func TestAddCacherConfig(t *testing.T) {
	t.Parallel()
	e := newExecutor(t, Options{})
	s := spec("true", map[string]string{"PATH": "/opt/x:/bin"})
	s.Cacher = &agent.CacherMount{Binary: "/usr/bin/baton-agent", SocketDir: "/var/lib/baton/work/c-1"}
	cfg, hc := e.config(s, testImage), &container.HostConfig{}
	if err := e.addCacher(context.Background(), s, testImage, cfg, hc); err != nil {
		t.Fatal(err)
	}
	env := strings.Join(cfg.Env, "\n")
	if !strings.Contains(env, "\nPATH=/baton/bin:/opt/x:/bin\n") || strings.Count(env, "PATH=") != 1 ||
		!strings.HasSuffix(env, "\nBATON_CACHER_SOCKET=/baton/run/cacher.sock") {
		t.Errorf("env:\n%s", env)
	}
	want := []mount.Mount{
		{Type: mount.TypeBind, Source: "/usr/bin/baton-agent", Target: "/baton/bin/cacher", ReadOnly: true},
		{Type: mount.TypeBind, Source: "/var/lib/baton/work/c-1", Target: "/baton/run", ReadOnly: true},
	}
	if fmt.Sprint(hc.Mounts) != fmt.Sprint(want) {
		t.Errorf("mounts %+v, want %+v", hc.Mounts, want)
	}
	s.Cacher = nil
	cfg, hc = e.config(s, testImage), &container.HostConfig{}
	e.addCacher(context.Background(), s, testImage, cfg, hc)
	if len(hc.Mounts) != 0 || strings.Contains(strings.Join(cfg.Env, " "), "BATON_CACHER") {
		t.Errorf("without a cacher: mounts %v env %v", hc.Mounts, cfg.Env)
	}
}
