package agent

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/baton-ci/baton/shared/engine"
	"github.com/baton-ci/baton/shared/protocol"
)

// sourceExecutor records what the step saw of its sources.
type sourceExecutor struct{ saw, ci string }

func (e *sourceExecutor) Execute(ctx context.Context, spec StepSpec, out io.Writer) (Outcome, error) {
	b, _ := os.ReadFile(filepath.Join(spec.SourceDir, "app.txt"))
	e.saw = string(b)
	c, _ := os.ReadFile(filepath.Join(spec.CIDir, "ci.sh"))
	e.ci = string(c)
	return Outcome{}, nil
}

// The run's source and CI source are prepared between the source hooks,
// handed to the executor, and removed after the step.
func TestStepGetsItsSources(t *testing.T) {
	t.Parallel()
	src, ci := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(src, "app.txt"), []byte("the app"), 0o644)
	os.WriteFile(filepath.Join(ci, "ci.sh"), []byte("trusted"), 0o644)
	hooks, trace := t.TempDir(), filepath.Join(t.TempDir(), "trace")
	writeHook(t, hooks, HookPreSource, `ls "$BATON_SOURCE_DIR" | wc -l >> `+trace+"\n")
	writeHook(t, hooks, HookPostSource, `ls "$BATON_SOURCE_DIR" >> `+trace+"\n")
	f := newFakeServer(&protocol.Assignment{StepID: "s", StepName: "build", Attempt: 1,
		Source: &protocol.Source{Type: "copy", Path: src}, CISource: &protocol.Source{Type: "copy", Path: ci}})
	exec := &sourceExecutor{}
	a := testAgent(t, f, exec)
	a.Config.HooksDir, a.Config.SourcesDir, a.Config.Sources.AllowLocal = hooks, t.TempDir(), true
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- a.Run(ctx) }()
	waitCompleted(t, f, 1)
	cancel()
	<-errc
	if exec.saw != "the app" || exec.ci != "trusted" {
		t.Errorf("the step saw source %q and CI %q", exec.saw, exec.ci)
	}
	if b, _ := os.ReadFile(trace); strings.Fields(string(b))[0] != "0" || !strings.Contains(string(b), "app.txt") {
		t.Errorf("hooks saw %q: want an empty source before and app.txt after", b)
	}
	if entries, _ := os.ReadDir(a.Config.SourcesDir); len(entries) != 0 {
		t.Errorf("sources left behind: %v", entries)
	}
}

// A source that cannot be prepared fails the step before it runs, saying why.
func TestStepFailsWhenItsSourceCannotBePrepared(t *testing.T) {
	t.Parallel()
	f := newFakeServer(&protocol.Assignment{StepID: "s", StepName: "build", Attempt: 1,
		Source: &protocol.Source{Type: "copy", Path: "/nonexistent"}})
	exec := &sourceExecutor{}
	res := runOnce(t, f, "", exec, "s")
	if res.Reason != engine.ReasonInfra || !strings.Contains(res.Error, "local sources are not allowed") {
		t.Errorf("result %+v, want infra naming the refused local source", res)
	}
}
