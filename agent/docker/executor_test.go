package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/baton-ci/baton/agent"
	"github.com/baton-ci/baton/agent/internal/syncbuf"
)

const testImage = "baton/busybox:test"

var (
	imageOnce sync.Once
	imageErr  error
)

// newExecutor connects to Docker and builds the test image once. Without
// Docker it skips loudly, except under CI=true where it fails.
func newExecutor(t *testing.T, opts Options) *Executor {
	t.Helper()
	if err := exec.Command("docker", "info").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Docker is required when CI=true: docker info: %v", err)
		}
		t.Skipf("SKIPPING: no Docker engine (docker info: %v)", err)
	}
	ctx := context.Background()
	opts.DefaultImage = testImage
	if opts.AgentID == "" {
		opts.AgentID = "test-agent"
	}
	if opts.WorkDir == "" {
		opts.WorkDir = t.TempDir()
	}
	e, err := New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	imageOnce.Do(func() { imageErr = BuildBusyboxImage(ctx, e.Client(), "/bin/busybox", testImage) })
	if imageErr != nil {
		t.Fatalf("build %s: %v", testImage, imageErr)
	}
	return e
}

var stepSeq struct {
	sync.Mutex
	n int
}

// uniqueID is unique to this test process and call.
func uniqueID(prefix string) string {
	stepSeq.Lock()
	stepSeq.n++
	n := stepSeq.n
	stepSeq.Unlock()
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), n)
}

func spec(command string, env map[string]string) agent.StepSpec {
	return agent.StepSpec{RunID: "run-1", StepID: uniqueID("step"), StepName: "test", Attempt: 1, Command: command, Env: env}
}

// containersOf lists the containers, running or not, labelled with the step.
func containersOf(t *testing.T, e *Executor, stepID string) []string {
	t.Helper()
	res, err := e.cli.ContainerList(context.Background(), client.ContainerListOptions{
		All: true, Filters: make(client.Filters).Add("label", LabelStep+"="+stepID),
	})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range res.Items {
		ids = append(ids, c.ID)
	}
	return ids
}

func TestExecuteOutputExitCodeAndCleanup(t *testing.T) {
	t.Parallel()
	e := newExecutor(t, Options{})
	s := spec(`echo "to stdout $WHO"; echo "to stderr" >&2; exit 7`, map[string]string{"WHO": "baton"})
	var out bytes.Buffer
	res, err := e.Execute(context.Background(), s, &out)
	if err != nil {
		t.Fatal(err)
	}
	if code := res.ExitCode; code != 7 {
		t.Errorf("exit code %d, want 7", code)
	}
	for _, want := range []string{"to stdout baton\n", "to stderr\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output %q lacks %q", out.String(), want)
		}
	}
	if ids := containersOf(t, e, s.StepID); len(ids) != 0 {
		t.Errorf("containers left behind: %v", ids)
	}
}

func TestExecuteSetsBatonEnvironment(t *testing.T) {
	t.Parallel()
	e := newExecutor(t, Options{})
	s := spec(`echo "$CI $BATON_RUN_ID $BATON_STEP_NAME $BATON_STEP_ATTEMPT"`, nil)
	var out bytes.Buffer
	if res, err := e.Execute(context.Background(), s, &out); err != nil || res.ExitCode != 0 {
		t.Fatalf("outcome %+v, err %v", res, err)
	}
	if got := out.String(); got != "true run-1 test 1\n" {
		t.Errorf("output %q", got)
	}
}

// The container runs with least privilege: checked by docker inspect while
// it runs and by the capability set the process sees.
func TestExecuteLeastPrivilege(t *testing.T) {
	t.Parallel()
	e := newExecutor(t, Options{Memory: 256 << 20, NanoCPUs: 5e8, PidsLimit: 64})
	s := spec(`grep -E '^CapEff' /proc/self/status; ls /sys/class/net; sleep 2`, nil)
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() {
		_, err := e.Execute(context.Background(), s, &out)
		done <- err
	}()
	var ids []string
	deadline := time.Now().Add(20 * time.Second)
	for len(ids) == 0 && time.Now().Before(deadline) {
		ids = containersOf(t, e, s.StepID)
		time.Sleep(20 * time.Millisecond)
	}
	if len(ids) != 1 {
		t.Fatalf("step container not found: %v", ids)
	}
	inspect, err := e.cli.ContainerInspect(context.Background(), ids[0], client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hc := inspect.Container.HostConfig
	if hc.Privileged || len(hc.CapDrop) != 1 || hc.CapDrop[0] != "ALL" || len(hc.CapAdd) != 0 {
		t.Errorf("privileges: privileged=%v capdrop=%v capadd=%v", hc.Privileged, hc.CapDrop, hc.CapAdd)
	}
	if len(hc.SecurityOpt) != 1 || hc.SecurityOpt[0] != "no-new-privileges:true" {
		t.Errorf("security options %v", hc.SecurityOpt)
	}
	if hc.PidsLimit == nil || *hc.PidsLimit != 64 || hc.Memory != 256<<20 || hc.MemorySwap != 256<<20 || hc.NanoCPUs != 5e8 {
		t.Errorf("limits: pids=%v memory=%d swap=%d cpus=%d", hc.PidsLimit, hc.Memory, hc.MemorySwap, hc.NanoCPUs)
	}
	if hc.NetworkMode != "none" {
		t.Errorf("network mode %q, want none", hc.NetworkMode)
	}
	for _, m := range inspect.Container.Mounts {
		if strings.Contains(m.Source, "docker.sock") {
			t.Errorf("docker socket mounted: %+v", m)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := out.String(); !strings.Contains(got, "CapEff:\t0000000000000000") || strings.TrimSpace(strings.SplitN(got, "\n", 2)[1]) != "lo" {
		t.Errorf("inside the container: %q, want no effective capabilities and only lo", got)
	}
}

func TestExecuteMissingImageIsAnError(t *testing.T) {
	t.Parallel()
	for policy, want := range map[string]string{
		PullIfNotPresent: "could not be pulled (pull policy if-not-present)",
		PullNever:        "its pull policy is never",
		PullAlways:       "could not be pulled (pull policy always)",
	} {
		e := newExecutor(t, Options{Pull: policy})
		s := spec("true", nil)
		s.Image = "baton/no-such-image:nope"
		res, err := e.Execute(context.Background(), s, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "baton/no-such-image:nope") || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: outcome %+v, err %v: want an error naming the image and %q", policy, res, err, want)
		}
	}
	// never with the image present runs it.
	e := newExecutor(t, Options{Pull: PullNever})
	if res, err := e.Execute(context.Background(), spec("true", nil), &bytes.Buffer{}); err != nil || res.ExitCode != 0 {
		t.Errorf("never with a present image: %+v %v", res, err)
	}
}

// A cancelled step gets SIGTERM (what it prints then is kept), then the
// container is removed.
func TestExecuteCancelStopsAndRemovesContainer(t *testing.T) {
	t.Parallel()
	// A grace that a loaded machine (CI runs every package at once) cannot
	// overrun before the trap prints: with 1 s the output once ended at
	// "started". A trap that ran ends the step at once anyway.
	e := newExecutor(t, Options{StopGrace: 5 * time.Second})
	s := spec("trap 'echo got TERM; exit 143' TERM; echo started; sleep 30 & wait", nil)
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan error, 1)
	var out syncbuf.Buffer
	go func() {
		_, err := e.Execute(ctx, s, &out)
		done <- err
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "started") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cause := errors.New("cancelled by test")
	cancel(cause)
	select {
	case err := <-done:
		if !errors.Is(err, cause) {
			t.Errorf("err %v, want the cancel cause", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("cancelled step still running after 15s")
	}
	if got := out.String(); got != "started\ngot TERM\n" {
		t.Errorf("output %q, want what the step printed on SIGTERM too", got)
	}
	if ids := containersOf(t, e, s.StepID); len(ids) != 0 {
		t.Errorf("containers left behind: %v", ids)
	}
}

func TestExecuteReturnsOutputsAndRunsExecForm(t *testing.T) {
	t.Parallel()
	e := newExecutor(t, Options{})
	s := spec("", nil)
	s.Args = []string{"sh", "-c", `echo "version=1.2.3" >> "$BATON_OUTPUT"; printf 'notes<<EOF\na\nb\nEOF\n' >> "$BATON_OUTPUT"; echo "exec $0"`, "form"}
	var out bytes.Buffer
	res, err := e.Execute(context.Background(), s, &out)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("outcome %+v, err %v, output %q", res, err, out.String())
	}
	if want := "version=1.2.3\nnotes<<EOF\na\nb\nEOF\n"; string(res.Outputs) != want {
		t.Errorf("outputs %q, want %q", res.Outputs, want)
	}
	if out.String() != "exec form\n" {
		t.Errorf("output %q", out.String())
	}
}

// A step that exceeds its memory is killed and reported as out of memory; a
// fork bomb is held by the pids limit and the container is removed.
func TestExecuteResourceLimits(t *testing.T) {
	t.Parallel()
	e := newExecutor(t, Options{Memory: 32 << 20, PidsLimit: 64, StopGrace: time.Second})
	// sort holds its whole input (one 200 MB line) in memory.
	res, err := e.Execute(context.Background(), spec("head -c 200000000 /dev/zero | sort >/dev/null", nil), &bytes.Buffer{})
	if err != nil || !res.OOMKilled || res.ExitCode == 0 {
		t.Errorf("memory hog: outcome %+v, err %v; want OOM-killed", res, err)
	}
	s := spec(`bomb() { bomb | bomb & }; bomb; sleep 2; echo "still here"`, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out bytes.Buffer
	if _, err := e.Execute(ctx, s, &out); err != nil && ctx.Err() != nil {
		t.Fatalf("fork bomb was not contained within 20 s: %v", err)
	}
	if ids := containersOf(t, e, s.StepID); len(ids) != 0 {
		t.Errorf("fork bomb container left behind: %v", ids)
	}
}

// A step's own memory and CPU limits apply, capped at the agent's, and a
// cap is said in its log.
func TestStepResourcesCappedByAgent(t *testing.T) {
	t.Parallel()
	e := newExecutor(t, Options{Memory: 64 << 20, NanoCPUs: 1e9})
	limit := `cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes`
	for _, c := range []struct {
		memory, cpus int64
		want         string
		capped       bool
	}{
		{16 << 20, 5e8, "16777216", false},
		{1 << 30, 4e9, "67108864", true},
	} {
		s := spec(limit, nil)
		s.Memory, s.NanoCPUs = c.memory, c.cpus
		var out bytes.Buffer
		res, err := e.Execute(context.Background(), s, &out)
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("exit %d, %v: %s", res.ExitCode, err, out.String())
		}
		got := out.String()
		if !strings.HasSuffix(got, c.want+"\n") || strings.Contains(got, "maximum") != c.capped {
			t.Errorf("asked %d bytes: output %q, want the limit %s (capped %v)", c.memory, got, c.want, c.capped)
		}
	}
}
