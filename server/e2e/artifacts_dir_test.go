package e2e

import (
	"slices"
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
	// cacher reports on stderr and cat prints on stdout: Docker carries the
	// two on separate pipes, so their lines may interleave either way.
	lines := strings.Split(check, "\n")
	if got.State != "succeeded" || !strings.Contains(build, "baton: stored 2 artifact(s) from /job/artifacts") ||
		!slices.Contains(lines, "report of build") || !slices.Contains(lines, "binary") {
		t.Errorf("run %s\nbuild log %q\ncheck log %q", got.State, build, check)
	}
}
