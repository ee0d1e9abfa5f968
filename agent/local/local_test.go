package local_test

import (
	"context"
	"testing"

	"github.com/baton-ci/baton/agent/local"
	"github.com/baton-ci/baton/shared/engine"
	"github.com/baton-ci/baton/shared/runbook"
)

const flow = `
params:
  env: {default: staging}
steps:
  - name: build
    command: make
    outputs: [version]
  - name: flaky
    command: test
    depends_on: [build]
    retry: {max: 2, delay: 1h}
  - name: deploy
    command: deploy ${{ steps.build.outputs.version }} to ${{ params.env }}
    depends_on: [flaky]
  - name: on-failure
    command: page someone
    depends_on: [deploy]
    if: failure()
  - name: cleanup
    command: tidy
    depends_on: [deploy]
    cleanup: true
  - name: prod-only
    command: announce
    depends_on: [build]
    if: params.env == 'production'
`

func run(t *testing.T, stubs local.Stubs) *local.Result {
	t.Helper()
	rb, err := runbook.Parse("flow.yml", []byte(flow))
	if err != nil {
		t.Fatal(err)
	}
	res, err := (&local.Runner{Executor: local.StubExecutor{Stubs: stubs}, Parallel: 2, NoDelay: true}).Run(context.Background(), rb, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func states(res *local.Result) map[string]engine.StepState {
	out := map[string]engine.StepState{}
	for name, s := range res.Steps {
		out[name] = s.State
	}
	return out
}

func TestStubbedRunSucceedsAfterRetries(t *testing.T) {
	t.Parallel()
	res := run(t, local.Stubs{
		"build": {{Outputs: map[string]string{"version": "1.2.3"}}},
		"flaky": {{ExitCode: 1}, {ExitCode: 1}, {ExitCode: 0}},
	})
	want := map[string]engine.StepState{"build": "succeeded", "flaky": "succeeded", "deploy": "succeeded",
		"on-failure": "skipped", "cleanup": "succeeded", "prod-only": "skipped"}
	if got := states(res); len(got) != len(want) || res.State != engine.RunSucceeded {
		t.Fatalf("run %s, steps %v", res.State, got)
	}
	for name, st := range want {
		if res.Steps[name].State != st {
			t.Errorf("%s: %s, want %s", name, res.Steps[name].State, st)
		}
	}
	if a := res.Steps["flaky"].Attempts; a != 3 {
		t.Errorf("flaky ran %d times, want 3", a)
	}
}

func TestStubbedRunFailure(t *testing.T) {
	t.Parallel()
	res := run(t, local.Stubs{"deploy": {{ExitCode: 7, Output: "no route\n"}}})
	if res.State != engine.RunFailed {
		t.Fatalf("run %s", res.State)
	}
	d := res.Steps["deploy"]
	if d.State != engine.StepFailed || d.Reason != engine.ReasonExitCode || *d.ExitCode != 7 || string(d.Log) != "no route\n" {
		t.Errorf("deploy %+v", d)
	}
	for name, st := range map[string]engine.StepState{"on-failure": "succeeded", "cleanup": "succeeded"} {
		if res.Steps[name].State != st {
			t.Errorf("%s: %s, want %s", name, res.Steps[name].State, st)
		}
	}
	res = run(t, local.Stubs{"build": {{Error: "image missing"}}})
	if b := res.Steps["build"]; b.State != engine.StepFailed || b.Reason != engine.ReasonInfra || res.Steps["flaky"].Reason != engine.ReasonUpstreamFailed {
		t.Errorf("build %+v, flaky %+v", b, res.Steps["flaky"])
	}
}

func TestStubbedAssert(t *testing.T) {
	t.Parallel()
	rb, err := runbook.Parse("a.yml", []byte("steps:\n  - name: a\n    command: x\n    assert: {exit_codes: [0, 2], output_matches: ok}\n  - name: b\n    command: y\n    assert: {output_matches: ok}\n"))
	if err != nil {
		t.Fatal(err)
	}
	stubs := local.Stubs{"a": {{ExitCode: 2, Output: "all ok\n"}}, "b": {{Output: "nope\n"}}}
	res, err := (&local.Runner{Executor: local.StubExecutor{Stubs: stubs}}).Run(context.Background(), rb, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := res.Steps["a"], res.Steps["b"]; a.State != engine.StepSucceeded || b.State != engine.StepFailed || b.Reason != engine.ReasonAssert {
		t.Errorf("a %+v, b %+v", a, b)
	}
}
