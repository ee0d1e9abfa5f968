package e2e

import (
	"encoding/json"
	"github.com/baton-ci/baton/shared/gitauth/gitauthtest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// makeRepo creates a git repository with two commits and returns its path
// and the first commit's id.
func makeRepo(t *testing.T) (string, string) {
	t.Helper()
	dir := t.TempDir()
	git := func(args ...string) string { return gitauthtest.Git(t, dir, args...) }
	git("init", "-q", "-b", "main")
	os.MkdirAll(filepath.Join(dir, "lib"), 0o755)
	os.WriteFile(filepath.Join(dir, "app.txt"), []byte("version 1\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "lib", "util.txt"), []byte("util\n"), 0o644)
	git("add", ".")
	git("commit", "-q", "-m", "one")
	first := git("rev-parse", "HEAD")
	os.WriteFile(filepath.Join(dir, "app.txt"), []byte("version 2\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "later.txt"), []byte("later\n"), 0o644)
	git("rm", "-q", "lib/util.txt")
	git("add", ".")
	git("commit", "-q", "-m", "two")
	return dir, first
}

// A run pinned to a commit of a real git repository sees exactly that
// tree at /job/src, with trusted CI code read-only at /job/ci.
func TestGitSourceAtCommit(t *testing.T) {
	t.Parallel()
	repo, first := makeRepo(t)
	ci := t.TempDir()
	os.WriteFile(filepath.Join(ci, "check.sh"), []byte("echo trusted check\n"), 0o644)
	s := startServer(t, freeAddr(t), t.TempDir())
	token := s.registrationToken(t)
	startAgent(t, s, token, t.TempDir(), "src", "--allow-local-sources")
	waitAgents(t, s, 1)
	body, _ := json.Marshal(map[string]any{
		"project": "src",
		"runbook": `steps:
  - name: build
    command: |
      echo "pwd=$(pwd) commit=$BATON_COMMIT"
      find . -type f -not -path './.git/*' | sort
      cat app.txt
      sh /job/ci/check.sh
      touch /job/ci/tampered 2>/dev/null && echo "ci writable" || echo "ci read-only"
`,
		"source":    map[string]string{"type": "git", "url": "file://" + repo, "commit": first},
		"ci_source": map[string]string{"type": "copy", "path": ci},
	})
	var run runView
	if code := s.do(t, "POST", "/api/v1/runs", "application/json", body, &run); code != 201 {
		t.Fatalf("create run: %d", code)
	}
	got := s.waitRun(t, run.ID, 60*time.Second)
	log := s.stepLog(t, run.ID, "build")
	if got.State != "succeeded" {
		t.Fatalf("run %s: %s", got.State, log)
	}
	want := "pwd=/job/src commit=" + first + "\n./app.txt\n./lib/util.txt\nversion 1\ntrusted check\nci read-only\n"
	if !strings.HasSuffix(log, want) {
		t.Errorf("step log:\n%s\nwant it to end with:\n%s", log, want)
	}
	if _, err := os.Stat(filepath.Join(ci, "tampered")); err == nil {
		t.Error("the step wrote into the CI source")
	}
}

// Without --allow-local-sources an agent refuses to read its host for a run.
func TestLocalSourceRefusedByDefault(t *testing.T) {
	t.Parallel()
	repo, _ := makeRepo(t)
	s := startServer(t, freeAddr(t), t.TempDir())
	token := s.registrationToken(t)
	startAgent(t, s, token, t.TempDir(), "strict")
	waitAgents(t, s, 1)
	body, _ := json.Marshal(map[string]any{"project": "src", "runbook": "steps:\n  - name: build\n    command: ls\n",
		"source": map[string]string{"type": "git", "url": "file://" + repo}})
	var run runView
	if code := s.do(t, "POST", "/api/v1/runs", "application/json", body, &run); code != 201 {
		t.Fatalf("create run: %d", code)
	}
	got := s.waitRun(t, run.ID, 60*time.Second)
	if st := got.step(t, "build"); got.State != "failed" || st.Reason != "infra" || !strings.Contains(st.Error, "local sources are not allowed") {
		t.Errorf("run %s, step %+v: want infra naming the refused local source", got.State, st)
	}
}

// The shell executor runs steps as host processes (no Docker involved).
func TestShellExecutor(t *testing.T) {
	t.Parallel()
	s := startServer(t, freeAddr(t), t.TempDir())
	token := s.registrationToken(t)
	agent := startAgent(t, s, token, t.TempDir(), "shell", "--executor", "shell")
	waitAgents(t, s, 1)
	run := s.submit(t, "shell", "steps:\n  - name: hello\n    command: echo \"hello from $BATON_STEP_NAME\"; echo v=1 >> \"$BATON_OUTPUT\"\n")
	got := s.waitRun(t, run.ID, 60*time.Second)
	if st := got.step(t, "hello"); got.State != "succeeded" || st.Outputs["v"] != "1" {
		t.Fatalf("run %s step %+v", got.State, st)
	}
	if log := s.stepLog(t, run.ID, "hello"); !strings.Contains(log, "hello from hello") {
		t.Errorf("log %q", log)
	}
	if !strings.Contains(agent.output(), "NO isolation") {
		t.Error("the agent did not warn that the shell executor isolates nothing")
	}
}
