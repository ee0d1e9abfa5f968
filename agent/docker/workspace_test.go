package docker

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// entries lists the names in dir.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	list, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range list {
		names = append(names, e.Name())
	}
	return names
}

// Each attempt works in its own <step id>-<attempt> directory, which is
// gone after the step, also after a cancel.
func TestStepDirectoryLifecycle(t *testing.T) {
	t.Parallel()
	workDir := t.TempDir()
	e := newExecutor(t, Options{WorkDir: workDir, StopGrace: time.Second})
	agentDir := filepath.Join(workDir, "test-agent")
	if fi, err := os.Stat(agentDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("agent dir: %v %v, want mode 0700", fi, err)
	}

	s := spec(`mkdir -p sub/deeper && echo x >sub/deeper/f && chmod 555 sub/deeper && sleep 30`, nil)
	s.Attempt = 3
	b := startStep(t, e, s)
	if names := entries(t, agentDir); len(names) != 1 || names[0] != s.StepID+"-3" {
		t.Errorf("step directories while running: %v, want [%s-3]", names, s.StepID)
	}
	b.stop(t)
	if names := entries(t, agentDir); len(names) != 0 {
		t.Errorf("step directories after a cancel: %v", names)
	}

	runStep(t, e, spec(`echo data >/workspace/file`, nil))
	if names := entries(t, agentDir); len(names) != 0 {
		t.Errorf("step directories after a step: %v", names)
	}
}

// When the agent cannot delete what a step left (it is not root), a
// container deletes it; here the agent is probably root, so the fallback
// is called directly.
func TestRemoveStepDirectoryInContainer(t *testing.T) {
	t.Parallel()
	e := newExecutor(t, Options{})
	dir := filepath.Join(t.TempDir(), "step-1")
	for _, d := range []string{"workspace/a/b", "baton"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "workspace/a/b/f"), []byte("x"), 0o600)
	os.Chmod(filepath.Join(dir, "workspace/a"), 0o555)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.removeInContainer(ctx, dir, "step", testImage); err != nil {
		t.Fatal(err)
	}
	if names := entries(t, dir); len(names) != 0 {
		t.Errorf("left in the step directory: %v", names)
	}
}

// Reap removes step directories a killed agent left, but not those of
// steps the agent holds.
func TestReapRemovesOrphanStepDirectories(t *testing.T) {
	t.Parallel()
	workDir := t.TempDir()
	e := newExecutor(t, Options{AgentID: uniqueID("reap-dirs"), WorkDir: workDir})
	for _, d := range []string{"orphan-1/workspace/x", "held-2/workspace"} {
		if err := os.MkdirAll(filepath.Join(e.workDir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-time.Hour)
	os.Chtimes(filepath.Join(e.workDir, "orphan-1"), old, old)
	os.Chtimes(filepath.Join(e.workDir, "held-2"), old, old)
	keep := func(stepID string) bool { return stepID == "held" }
	// Made after before: not reaped yet.
	if n, err := e.Reap(context.Background(), old.Add(-time.Minute), keep); err != nil || n != 0 {
		t.Errorf("reap before they were made: %d, %v", n, err)
	}
	if n, err := e.Reap(context.Background(), time.Now(), keep); err != nil || n != 1 {
		t.Errorf("reap: %d, %v; want 1 removed", n, err)
	}
	if names := entries(t, e.workDir); len(names) != 1 || names[0] != "held-2" {
		t.Errorf("left: %v, want [held-2]", names)
	}
}

func TestWorkDirMustBeTheAgents(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.Chmod(dir, 0o777)
	if _, err := prepareWorkDir(dir, "a"); err == nil {
		t.Error("a work dir writable by everyone without the sticky bit was accepted")
	}
	os.Chmod(dir, 0o777|os.ModeSticky)
	if _, err := prepareWorkDir(dir, "a"); err != nil {
		t.Errorf("a sticky work dir like /tmp: %v", err)
	}
	target := t.TempDir()
	os.Symlink(target, filepath.Join(dir, "b"))
	if _, err := prepareWorkDir(dir, "b"); err == nil {
		t.Error("an agent dir that is a symlink was accepted")
	}
}

func TestStepOwner(t *testing.T) {
	t.Parallel()
	for user, want := range map[string][3]int{
		"65534:65534": {65534, 65534, 1}, "1000": {1000, -1, 1}, "nobody": {0, 0, 0}, "1000:staff": {0, 0, 0}, "": {0, 0, 0},
	} {
		uid, gid, ok := stepOwner(user)
		if ok != (want[2] == 1) || ok && (uid != want[0] || gid != want[1]) {
			t.Errorf("%q: %d %d %v", user, uid, gid, ok)
		}
	}
}
