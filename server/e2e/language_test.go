package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

const languageRunbook = `
params:
  version:
    type: string
    required: true
  greeting:
    default: hello
steps:
  - name: build
    command: echo "artifact=app-${{ params.version }}.tar" >> "$BATON_OUTPUT"; echo "${{ params.greeting }} building"
    outputs: [artifact]
  - name: use
    depends_on: [build]
    env:
      ART: ${{ steps.build.outputs.artifact }}
    command: echo "using $ART in run ${{ run.id }}"
  - name: fail
    depends_on: [use]
    command: exit 4
  - name: after-fail
    depends_on: [fail]
    command: echo never
  - name: on-failure
    depends_on: [after-fail]
    if: failure()
    command: echo "handling failure"
  - name: cleanup
    depends_on: [fail]
    cleanup: true
    command: echo "cleanup after ${{ steps.fail.state }}"
  - name: prod-only
    depends_on: [build]
    if: params.version == 'prod'
    command: echo never
  - name: grep-miss
    command: echo haystack; exit 1
    assert:
      exit_codes: [0, 1]
      output_matches: "^hay"
  - name: wrong-output
    command: echo nope
    assert:
      output_matches: "^ok"
`

// Outputs flow between steps through ${{ }}, params fill in defaults,
// failure() and cleanup steps run after a failure, a false if skips, and
// assert decides success from exit codes and output.
func TestOutputsParamsAndConditions(t *testing.T) {
	t.Parallel()
	s := fleet(t)

	var rejected struct {
		Error   string   `json:"error"`
		Details []string `json:"details"`
	}
	body, _ := json.Marshal(map[string]any{"project": "e2e", "runbook": languageRunbook})
	if code := s.do(t, "POST", "/api/v1/runs", "application/json", body, &rejected); code != 400 ||
		len(rejected.Details) != 1 || !strings.Contains(rejected.Details[0], `param "version" is required`) {
		t.Fatalf("run without its required param: %d %+v", code, rejected)
	}

	run := s.submitParams(t, "e2e", languageRunbook, map[string]any{"version": "1.2.3"})
	run = s.waitRun(t, run.ID, 90*time.Second)
	if run.State != "failed" {
		t.Fatalf("run %s, want failed: %+v", run.State, run.Steps)
	}
	want := map[string]struct{ state, reason string }{
		"build": {"succeeded", ""}, "use": {"succeeded", ""}, "fail": {"failed", "exit_code"},
		"after-fail": {"skipped", "upstream_failed"}, "on-failure": {"succeeded", ""},
		"cleanup": {"succeeded", ""}, "prod-only": {"skipped", "condition"},
		"grep-miss": {"succeeded", ""}, "wrong-output": {"failed", "assert"},
	}
	for name, w := range want {
		if st := run.step(t, name); st.State != w.state || st.Reason != w.reason {
			t.Errorf("%s: state %s reason %q, want %s %q", name, st.State, st.Reason, w.state, w.reason)
		}
	}
	if out := run.step(t, "build").Outputs; out["artifact"] != "app-1.2.3.tar" {
		t.Errorf("build outputs %v", out)
	}
	logs := map[string]string{
		"build":      "hello building\n",
		"use":        "using app-1.2.3.tar in run " + run.ID + "\n",
		"on-failure": "handling failure\n",
		"cleanup":    "cleanup after failed\n",
	}
	for name, want := range logs {
		if got := s.stepLog(t, run.ID, name); got != want {
			t.Errorf("log of %s = %q, want %q", name, got, want)
		}
	}
}
