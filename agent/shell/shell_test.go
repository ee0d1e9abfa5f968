package shell

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baton-ci/baton/agent"
	"github.com/baton-ci/baton/agent/internal/syncbuf"
)

func newExec(t *testing.T) (*Executor, string) {
	t.Helper()
	dir := t.TempDir()
	e, err := New(Options{WorkDir: dir, StopGrace: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return e, dir
}

func TestShellRunsStepWithItsOwnEnvironment(t *testing.T) {
	t.Setenv("AGENT_SECRET", "must-not-leak")
	e, dir := newExec(t)
	var out bytes.Buffer
	spec := agent.StepSpec{RunID: "r", StepID: "s", StepName: "build", Attempt: 2,
		Command: `echo "hi $GREETING from $(pwd)"; echo "secret=[$AGENT_SECRET]"; echo version=1.2 >> "$BATON_OUTPUT"; exit 3`,
		Env:     map[string]string{"GREETING": "hello"}}
	res, err := e.Execute(context.Background(), spec, &out)
	if err != nil {
		t.Fatal(err)
	}
	want := "hi hello from " + filepath.Join(dir, "s-2", "workspace") + "\nsecret=[]\n"
	if res.ExitCode != 3 || out.String() != want || string(res.Outputs) != "version=1.2\n" {
		t.Errorf("exit %d, output %q, outputs %q; want 3, %q, version=1.2", res.ExitCode, out.String(), res.Outputs, want)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("step directory left behind: %v", entries)
	}
}

// Cancel sends SIGTERM to the whole process group (children too), then
// SIGKILL to what ignores it.
func TestShellCancelKillsTheProcessGroup(t *testing.T) {
	e, _ := newExec(t)
	pidFile := filepath.Join(t.TempDir(), "child")
	var out syncbuf.Buffer
	spec := agent.StepSpec{StepID: "c", Attempt: 1,
		Command: "trap '' TERM; (trap '' TERM; sleep 60) & echo $! > " + pidFile + "; echo started; sleep 60"}
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := e.Execute(ctx, spec, &out)
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "started") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cause := errors.New("cancelled by test")
	start := time.Now()
	cancel(cause)
	select {
	case err := <-done:
		if !errors.Is(err, cause) {
			t.Errorf("err %v, want the cancel cause", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancelled step still running")
	}
	if took := time.Since(start); took < 400*time.Millisecond || took > 3*time.Second {
		t.Errorf("stop took %s; want the 500ms grace, then SIGKILL", took)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid := strings.TrimSpace(string(b))
	if _, err := os.Stat("/proc/" + pid); err == nil {
		if stat, _ := os.ReadFile("/proc/" + pid + "/stat"); !strings.Contains(string(stat), ") Z ") {
			t.Errorf("child %s survived the cancel", pid)
		}
	}
}
