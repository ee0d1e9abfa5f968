package e2e

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMakeRun does what the README tells a newcomer: `make run`, then the
// printed command that submits the example. It must be ready within 60 s and
// the example run must succeed; Ctrl-C (SIGINT to the process group) stops
// everything.
func TestMakeRun(t *testing.T) {
	addr := freeAddr(t)
	state := t.TempDir()
	env := append(os.Environ(), "BATON_ADDR="+addr, "BATON_RUN_STATE="+state)

	cmd := exec.Command("make", "run")
	cmd.Dir = repoRoot
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	started := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); pw.Close() }()

	var output strings.Builder
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		var submit string
		for sc.Scan() {
			line := sc.Text()
			output.WriteString(line + "\n")
			if strings.Contains(line, "deploy/dev/submit.sh ") && submit == "" {
				submit = strings.TrimSpace(line)
			}
			if strings.Contains(line, "Press Ctrl-C to stop") {
				ready <- submit
			}
		}
		close(ready)
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			t.Errorf("make run did not stop within 30s of Ctrl-C")
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("---- make run output ----\n%s", output.String())
		}
	})

	var submit string
	select {
	case s, ok := <-ready:
		if !ok {
			t.Fatalf("make run ended before it was ready")
		}
		submit = s
	case <-time.After(3 * time.Minute): // includes building; readiness is measured below
		t.Fatal("make run not ready after 3 minutes")
	}
	took := time.Since(started)
	t.Logf("make run ready after %s", took.Round(time.Millisecond))
	if submit != "deploy/dev/submit.sh examples/hello/runbook.yml" {
		t.Fatalf("printed submit command %q", submit)
	}
	fields := strings.Fields(submit)
	sub := exec.Command(filepath.Join(repoRoot, fields[0]), fields[1:]...)
	sub.Dir = repoRoot
	sub.Env = env
	out, err := sub.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", submit, err, out)
	}
	for _, want := range []string{"step greet: succeeded", "Hello, Baton!", "step summary: succeeded", "succeeded"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("submit output lacks %q:\n%s", want, out)
		}
	}
	stop()
	if took > 60*time.Second {
		t.Errorf("make run took %s to be ready; the README promises 60s", took)
	}
}
