package e2e

import (
	"encoding/json"
	"testing"
	"time"
)

// A runbook that includes two others, one after a step and one in parallel,
// sent with its files over the API; outputs flow out of the included steps.
func TestIncludeWithAndWithoutAfter(t *testing.T) {
	t.Parallel()
	s := fleet(t)
	body, _ := json.Marshal(map[string]any{
		"project": "e2e",
		"runbook": `
include:
  - path: ci/lint.yml
    as: lint
  - path: ci/deploy.yml
    as: deploy
    after: [build]
steps:
  - name: build
    command: sleep 1; echo built
  - name: announce
    depends_on: [deploy.rollout]
    command: echo "announcing ${{ steps['deploy.migrate'].outputs.version }}"
`,
		"files": map[string]string{
			"ci/lint.yml": "steps:\n  - name: vet\n    command: echo vetted\n",
			"ci/deploy.yml": `
global:
  env:
    REGION: eu
steps:
  - name: migrate
    command: echo "version=7" >> "$BATON_OUTPUT"
  - name: rollout
    depends_on: [migrate]
    command: echo "rolling out ${{ steps.migrate.outputs.version }} in $REGION"
`,
		},
	})
	var run runView
	if code := s.do(t, "POST", "/api/v1/runs", "application/json", body, &run); code != 201 {
		t.Fatalf("create run: %d %+v", code, run)
	}
	run = s.waitRun(t, run.ID, 60*time.Second)
	if run.State != "succeeded" {
		t.Fatalf("run %s: %+v", run.State, run.Steps)
	}
	build, vet, migrate := run.step(t, "build"), run.step(t, "lint.vet"), run.step(t, "deploy.migrate")
	if migrate.StartedAt.Before(*build.FinishedAt) {
		t.Errorf("deploy.migrate started %s, before build finished %s (after: [build])", migrate.StartedAt, build.FinishedAt)
	}
	if !vet.StartedAt.Before(*build.FinishedAt) {
		t.Errorf("lint.vet started %s, after build finished %s; without after it runs in parallel", vet.StartedAt, build.FinishedAt)
	}
	for name, want := range map[string]string{
		"deploy.rollout": "rolling out 7 in eu\n",
		"announce":       "announcing 7\n",
		"lint.vet":       "vetted\n",
	} {
		if got := s.stepLog(t, run.ID, name); got != want {
			t.Errorf("log of %s = %q, want %q", name, got, want)
		}
	}
}
