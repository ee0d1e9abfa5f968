package cacher_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-ci/baton/agent/cacher"
	"github.com/baton-ci/baton/shared/mask"
	"github.com/baton-ci/baton/shared/protocol"
	"github.com/baton-ci/baton/shared/runbook"
)

// fakeArtifacts is the server's artifact API in memory, for one run.
type fakeArtifacts struct {
	mu    sync.Mutex
	files map[string][]byte
	calls int
	// corrupt makes GET send content that does not match its checksum.
	corrupt bool
	// hold, if set, is a reader GET sends after the first half of the content.
	hold io.Reader
}

type statusError struct {
	status int
	msg    string
}

func (e *statusError) Error() string   { return fmt.Sprintf("server answered %d: %s", e.status, e.msg) }
func (e *statusError) HTTPStatus() int { return e.status }

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func (f *fakeArtifacts) PutArtifact(ctx context.Context, stepID string, lease protocol.LeaseRequest, key string, body io.Reader, size int64, sum string) (protocol.Artifact, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return protocol.Artifact{}, err
	}
	if sum != hexSum(b) || size != int64(len(b)) {
		return protocol.Artifact{}, &statusError{400, "checksum or size mismatch"}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	f.files[key] = b
	return protocol.Artifact{Key: key, Size: int64(len(b)), SHA256: sum}, nil
}

func (f *fakeArtifacts) GetArtifact(ctx context.Context, stepID string, lease protocol.LeaseRequest, key string) (io.ReadCloser, protocol.Artifact, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	b, ok := f.files[key]
	if !ok {
		return nil, protocol.Artifact{}, &statusError{404, fmt.Sprintf("no artifact %q in this run", key)}
	}
	a := protocol.Artifact{Key: key, Size: int64(len(b)), SHA256: hexSum(b)}
	body := io.Reader(bytes.NewReader(b))
	if f.corrupt {
		c := bytes.Clone(b)
		c[len(c)/2] ^= 1
		body = bytes.NewReader(c)
	}
	if f.hold != nil {
		body = io.MultiReader(bytes.NewReader(b[:len(b)/2]), f.hold, bytes.NewReader(b[len(b)/2:]))
	}
	return io.NopCloser(body), a, nil
}

func (f *fakeArtifacts) DeleteArtifact(ctx context.Context, stepID string, lease protocol.LeaseRequest, key string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if _, ok := f.files[key]; !ok {
		return &statusError{404, fmt.Sprintf("no artifact %q in this run", key)}
	}
	delete(f.files, key)
	return nil
}

// env is a started cacher server and what it talks to.
type env struct {
	srv    *cacher.Server
	art    *fakeArtifacts
	masker *mask.Masker
	dir    string // a scratch directory for files
}

func start(t *testing.T) *env {
	t.Helper()
	work := filepath.Join(t.TempDir(), "work")
	if err := cacher.PrepareWorkDir(work); err != nil {
		t.Fatal(err)
	}
	e := &env{art: &fakeArtifacts{files: map[string][]byte{}}, masker: mask.New(nil), dir: t.TempDir()}
	srv, err := cacher.Start(work, cacher.Step{StepID: "step-1", Lease: protocol.LeaseRequest{Attempt: 1, LeaseID: "l"},
		Artifacts: e.art, Masker: e.masker})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	e.srv = srv
	return e
}

// run runs the cacher command with a deadline and returns its exit code
// and stderr.
func (e *env) run(t *testing.T, stdin string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	getenv := func(k string) string {
		if k == cacher.EnvSocket {
			return filepath.Join(e.srv.Dir(), cacher.SocketName)
		}
		return ""
	}
	code := cacher.Main(ctx, args, getenv, strings.NewReader(stdin), &stderr)
	return code, stderr.String()
}

func TestPutGetDelete(t *testing.T) {
	t.Parallel()
	e := start(t)
	content := make([]byte, 3<<20+17)
	rand.Read(content)
	src := filepath.Join(e.dir, "src")
	os.WriteFile(src, content, 0o600)
	if code, out := e.run(t, "", "put", "build/out.bin", src); code != 0 || !strings.Contains(out, "stored build/out.bin ("+fmt.Sprint(len(content))+" bytes, sha256 "+hexSum(content)) {
		t.Fatalf("put: %d %q", code, out)
	}
	dst := filepath.Join(e.dir, "dst")
	os.WriteFile(dst, []byte("old"), 0o600)
	if code, out := e.run(t, "", "get", "build/out.bin", dst); code != 0 || !strings.Contains(out, "verified") {
		t.Fatalf("get: %d %q", code, out)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, content) {
		t.Fatalf("got %d bytes back, want the %d put", len(got), len(content))
	}
	if code, out := e.run(t, "", "delete", "build/out.bin"); code != 0 || !strings.Contains(out, "deleted build/out.bin") {
		t.Fatalf("delete: %d %q", code, out)
	}
	code, out := e.run(t, "", "get", "build/out.bin", dst)
	if code != 1 || !strings.Contains(out, `no artifact "build/out.bin" in this run`) {
		t.Errorf("get after delete: %d %q", code, out)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, content) {
		t.Error("a failed get changed the destination")
	}
	entries, _ := os.ReadDir(e.dir)
	if len(entries) != 2 {
		t.Errorf("scratch dir holds %d entries, want src and dst only (no temporary files)", len(entries))
	}
	// An empty file is an artifact too.
	os.WriteFile(src, nil, 0o600)
	if code, out := e.run(t, "", "put", "empty", src); code != 0 {
		t.Fatalf("put empty: %d %q", code, out)
	}
	if code, out := e.run(t, "", "get", "empty", dst); code != 0 {
		t.Fatalf("get empty: %d %q", code, out)
	}
}

// Keys that could leave the run's artifacts are refused by the command
// itself with a clear message, before anything is sent.
func TestBadKeysAreRefused(t *testing.T) {
	t.Parallel()
	e := start(t)
	src := filepath.Join(e.dir, "src")
	os.WriteFile(src, []byte("x"), 0o600)
	for key, want := range map[string]string{
		"../x":        `artifact key "../x": a path segment must not be ".."`,
		"/etc/passwd": `artifact key "/etc/passwd": it must be relative, not start with '/'`,
		"a//b":        "empty path segment",
		"":            "artifact key is empty",
		"a b":         "is not allowed",
	} {
		for _, args := range [][]string{{"put", key, src}, {"get", key, filepath.Join(e.dir, "out")}, {"delete", key}} {
			code, out := e.run(t, "", args...)
			if code != 1 || !strings.Contains(out, want) || !strings.HasPrefix(out, "cacher: "+args[0]+": ") {
				t.Errorf("%q: exit %d, stderr %q; want 1 and %q", args, code, out, want)
			}
		}
	}
	if e.art.calls != 0 {
		t.Errorf("%d calls reached the server", e.art.calls)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "out")); !os.IsNotExist(err) {
		t.Errorf("a refused get wrote a file: %v", err)
	}
}

// Content that does not match the server's checksum is not written.
func TestGetVerifiesChecksum(t *testing.T) {
	t.Parallel()
	e := start(t)
	e.art.files["k"] = bytes.Repeat([]byte("abc"), 1000)
	e.art.corrupt = true
	dst := filepath.Join(e.dir, "dst")
	code, out := e.run(t, "", "get", "k", dst)
	if code != 1 || !strings.Contains(out, "damaged in transit") {
		t.Errorf("get of damaged content: %d %q", code, out)
	}
	if entries, _ := os.ReadDir(e.dir); len(entries) != 0 {
		t.Errorf("files left behind: %v", entries)
	}
}

// A get is streamed: bytes reach the destination's temporary file while
// the server is still sending.
func TestGetStreams(t *testing.T) {
	t.Parallel()
	e := start(t)
	content := make([]byte, 8<<20)
	rand.Read(content)
	e.art.files["big"] = content
	release := make(chan struct{})
	e.art.hold = readerFunc(func([]byte) (int, error) { <-release; return 0, io.EOF })
	dst := filepath.Join(e.dir, "dst")
	done := make(chan int, 1)
	go func() {
		code, _ := e.run(t, "", "get", "big", dst)
		done <- code
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		tmps, _ := filepath.Glob(filepath.Join(e.dir, ".dst.cacher-*"))
		if len(tmps) == 1 {
			if info, err := os.Stat(tmps[0]); err == nil && info.Size() >= int64(len(content))/4 {
				break
			}
		}
		if time.Now().After(deadline) {
			close(release)
			t.Fatal("nothing reached the destination while the server held back the rest")
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	if code := <-done; code != 0 {
		t.Fatalf("get: exit %d", code)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, content) {
		t.Error("content differs")
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

func TestMask(t *testing.T) {
	t.Parallel()
	e := start(t)
	code, out := e.run(t, "", "mask", "abc12")
	if code != 1 || !strings.Contains(out, "the value has 5 characters; values shorter than 6 are not masked") || strings.Contains(out, "abc12") {
		t.Errorf("mask of a short value: %d %q", code, out)
	}
	if !e.masker.Empty() {
		t.Error("a short value was taken")
	}
	if code, out := e.run(t, "", "mask", "runtime-token-1"); code != 0 || out != "" {
		t.Errorf("mask: %d %q", code, out)
	}
	if code, out := e.run(t, "stdin-token-22\n", "mask", "-"); code != 0 || out != "" {
		t.Errorf("mask -: %d %q", code, out)
	}
	if got := string(e.masker.Mask([]byte("a runtime-token-1 b stdin-token-22\n"))); got != "a *** b ***\n" {
		t.Errorf("masked %q", got)
	}
}

func TestOutput(t *testing.T) {
	t.Parallel()
	e := start(t)
	for _, kv := range [][2]string{{"version", "1.2.3"}, {"notes", "line one\nline two"}, {"version", "1.2.4"}, {"empty", ""}} {
		if code, out := e.run(t, "", "output", kv[0], kv[1]); code != 0 {
			t.Fatalf("output %q: %d %q", kv, code, out)
		}
	}
	for _, bad := range []string{"a=b", "with space", "x<<y", ""} {
		if code, out := e.run(t, "", "output", bad, "v"); code != 1 || !strings.Contains(out, "output name") {
			t.Errorf("output %q: %d %q", bad, code, out)
		}
	}
	got, problems := runbook.ParseOutputs(cacher.JoinOutputs([]byte("from_file=1\nversion=0"), e.srv.Outputs()))
	want := map[string]string{"from_file": "1", "version": "1.2.4", "notes": "line one\nline two", "empty": ""}
	if len(problems) > 0 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("outputs %q (problems %q), want %q", got, problems, want)
	}
	// The step's limit holds.
	big := strings.Repeat("v", runbook.MaxOutputBytes)
	if code, out := e.run(t, "", "output", "big", big); code != 1 || !strings.Contains(out, "limit") {
		t.Errorf("output over the limit: %d %q", code, out)
	}
}

func TestUsageAndEnvironment(t *testing.T) {
	t.Parallel()
	e := start(t)
	for _, args := range [][]string{nil, {"fly"}, {"put", "k"}, {"delete", "k", "extra"}} {
		if code, out := e.run(t, "", args...); code != 2 || !strings.Contains(out, "usage:") {
			t.Errorf("%q: %d %q", args, code, out)
		}
	}
	var stderr bytes.Buffer
	code := cacher.Main(t.Context(), []string{"delete", "k"}, func(string) string { return "" }, nil, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "BATON_CACHER_SOCKET is not set") {
		t.Errorf("without the socket: %d %q", code, stderr.String())
	}
}

// The step directory is reachable by any user of the container (the work
// dir above it is the agent's alone) and is removed by Close.
func TestStepDirectory(t *testing.T) {
	t.Parallel()
	work := filepath.Join(t.TempDir(), "work")
	if err := cacher.PrepareWorkDir(work); err != nil {
		t.Fatal(err)
	}
	srv, err := cacher.Start(work, cacher.Step{Artifacts: &fakeArtifacts{}, Masker: mask.New(nil)})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{work: 0o700 | os.ModeDir, srv.Dir(): 0o755 | os.ModeDir,
		filepath.Join(srv.Dir(), cacher.SocketName): 0o666 | os.ModeSocket} {
		if info, err := os.Stat(path); err != nil || info.Mode() != want {
			t.Errorf("%s: %v %v, want %v", path, info.Mode(), err, want)
		}
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(srv.Dir()); !os.IsNotExist(err) {
		t.Errorf("step directory left after Close: %v", err)
	}
	if err := cacher.PrepareWorkDir("/" + strings.Repeat("d", 100)); err == nil || !strings.Contains(err.Error(), "too long") {
		t.Errorf("a work dir too long for a socket path: %v", err)
	}
}

// A step directory left by a killed agent goes at the next start; one in
// use stays.
func TestPrepareWorkDirRemovesStaleDirectories(t *testing.T) {
	t.Parallel()
	work := filepath.Join(t.TempDir(), "work")
	if err := cacher.PrepareWorkDir(work); err != nil {
		t.Fatal(err)
	}
	live, err := cacher.Start(work, cacher.Step{Artifacts: &fakeArtifacts{}, Masker: mask.New(nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	stale := filepath.Join(work, "c-stale")
	os.Mkdir(stale, 0o755)
	os.WriteFile(filepath.Join(stale, cacher.SocketName), nil, 0o600)
	if err := cacher.PrepareWorkDir(work); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale directory kept: %v", err)
	}
	if _, err := os.Stat(live.Dir()); err != nil {
		t.Errorf("live directory removed: %v", err)
	}
}

func TestStageBinary(t *testing.T) {
	t.Parallel()
	exe := filepath.Join(t.TempDir(), "baton-agent")
	if err := os.WriteFile(exe, []byte("first build"), 0o700); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "work", "id-cacher", "bin")
	got, err := cacher.StageBinary(exe, dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, cacher.Name); got != want {
		t.Errorf("staged at %s, want %s", got, want)
	}
	fi, err := os.Stat(got)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o755 {
		t.Errorf("mode %s, want 0755: a step's user must be able to run it", fi.Mode())
	}
	// A newer agent replaces the copy; no temporary file is left behind.
	os.WriteFile(exe, []byte("second build"), 0o700)
	if _, err := cacher.StageBinary(exe, dir); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(got); string(b) != "second build" {
		t.Errorf("staged copy holds %q, want the new binary", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("dir holds %d entries, want only %s", len(entries), cacher.Name)
	}
	if _, err := cacher.StageBinary(filepath.Join(t.TempDir(), "missing"), dir); err == nil {
		t.Error("a missing binary was staged")
	}
}
