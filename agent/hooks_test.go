package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/baton-ci/baton/shared/engine"
	"github.com/baton-ci/baton/shared/protocol"
)

func writeHook(t *testing.T, dir, name, script string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// runOnce runs an agent against f until one step is reported, and returns
// that step's result.
func runOnce(t *testing.T, f *fakeServer, hooks string, exec Executor, stepID string) protocol.StepResult {
	t.Helper()
	a := testAgent(t, f, exec)
	a.Config.HooksDir = hooks
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- a.Run(ctx) }()
	waitCompleted(t, f, 1)
	cancel()
	<-errc
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.results[stepID]
}

func TestHooksRunAroundSteps(t *testing.T) {
	t.Parallel()
	hooks := t.TempDir()
	trace := filepath.Join(t.TempDir(), "trace")
	for _, h := range []string{HookPreStep, HookPostStep, HookOnError, HookCleanup} {
		writeHook(t, hooks, h, `echo "`+h+` $BATON_STEP_NAME $BATON_STEP_RESULT $BATON_STEP_EXIT_CODE" >> `+trace+"\necho hello from "+h+"\n")
	}
	f := newFakeServer(&protocol.Assignment{StepID: "s1", StepName: "build", Attempt: 1, Env: map[string]string{"EXIT": "2"}})
	res := runOnce(t, f, hooks, &scriptExecutor{}, "s1")
	if res.ExitCode == nil || *res.ExitCode != 2 {
		t.Fatalf("result %+v", res)
	}
	got, _ := os.ReadFile(trace)
	want := "pre-step build  \non-error build failed 2\npost-step build failed 2\ncleanup build failed 2\n"
	if string(got) != want {
		t.Errorf("hooks ran as\n%s\nwant\n%s", got, want)
	}
	f.mu.Lock()
	log := string(f.logs["s1"])
	f.mu.Unlock()
	if !strings.Contains(log, "[hook pre-step] hello from pre-step\n") || !strings.Contains(log, "[hook cleanup] hello from cleanup\n") {
		t.Errorf("hook output not in the step log:\n%s", log)
	}
}

func TestFailingPreStepHookFailsTheStep(t *testing.T) {
	t.Parallel()
	hooks := t.TempDir()
	writeHook(t, hooks, HookPreStep, "echo no disk >&2\nexit 1\n")
	exec := &recordingExecutor{}
	res := runOnce(t, newFakeServer(&protocol.Assignment{StepID: "s1", StepName: "build", Attempt: 1}), hooks, exec, "s1")
	if res.Reason != engine.ReasonInfra || !strings.Contains(res.Error, "hook pre-step") || exec.calls.Load() != 0 {
		t.Errorf("result %+v, executor calls %d: want infra from the hook and no run", res, exec.calls.Load())
	}
}
