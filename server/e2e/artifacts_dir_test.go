package e2e

import (
	"strings"
	"testing"
	"time"
)

// What a step leaves in /job/artifacts is stored as artifacts of the run,
// under its step name, for later steps to fetch with cacher get.
func TestArtifactsDirectory(t *testing.T) {
	t.Parallel()
	s := startServer(t, freeAddr(t), t.TempDir())
	token := s.registrationToken(t)
	startAgent(t, s, token, t.TempDir(), "artifacts")
	waitAgents(t, s, 1)
	run := s.submit(t, "arts", `steps:
  - name: build
    command: |
      echo "report of $BATON_STEP_NAME" > "$BATON_ARTIFACTS_DIR/report.txt"
      mkdir -p /job/artifacts/bin && echo binary > /job/artifacts/bin/app
  - name: check
    depends_on: build
    command: cacher get build/report.txt /tmp/r && cat /tmp/r && cacher get build/bin/app /tmp/a && cat /tmp/a
`)
	got := s.waitRun(t, run.ID, 60*time.Second)
	build, check := s.stepLog(t, run.ID, "build"), s.stepLog(t, run.ID, "check")
	if got.State != "succeeded" || !strings.Contains(build, "baton: stored 2 artifact(s) from /job/artifacts") ||
		!strings.Contains(check, "\nreport of build\n") || !strings.Contains(check, "\nbinary\n") {
		t.Errorf("run %s\nbuild log %q\ncheck log %q", got.State, build, check)
	}
}
