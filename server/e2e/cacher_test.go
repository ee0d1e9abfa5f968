package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// sha256Of finds the checksum sha256sum printed for file in a step log.
func sha256Of(t *testing.T, log, file string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^([0-9a-f]{64})  ` + regexp.QuoteMeta(file) + `$`).FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("no sha256sum of %s in log:\n%s", file, log)
	}
	return m[1]
}

// took finds how long cacher said a transfer took.
func took(t *testing.T, log, verb string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^cacher: ` + verb + ` .* in ([0-9.]+m?s)$`).FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("cacher did not report the %s in log:\n%s", verb, log)
	}
	return m[1]
}

// A 10 MB file put by step a with cacher is fetched intact by step b (which
// may run on the other agent), through the real server and agents, with
// the steps' default network none. Keys that try to leave the run are
// refused with a clear message.
func TestCacherArtifactsBetweenSteps(t *testing.T) {
	t.Parallel()
	s := fleet(t)
	start := time.Now()
	run := s.submit(t, "cacher", `
steps:
  - name: a
    command: |
      set -e
      ls /sys/class/net
      head -c 10485760 /dev/urandom > f
      sha256sum f
      cacher put build/blob.bin f
      for key in ../x /etc/passwd; do
        code=0; cacher put "$key" f 2> err || code=$?
        echo "put $key: exit $code: $(cat err)"
      done
  - name: b
    depends_on: [a]
    command: |
      set -e
      cacher get build/blob.bin g
      sha256sum g
      code=0; cacher get ../x g 2> err || code=$?
      echo "get ../x: exit $code: $(cat err)"
`)
	run = s.waitRun(t, run.ID, 120*time.Second)
	elapsed := time.Since(start)
	logA, logB := s.stepLog(t, run.ID, "a"), s.stepLog(t, run.ID, "b")
	if run.State != "succeeded" {
		t.Fatalf("run %s: %+v\na:\n%s\nb:\n%s", run.State, run.Steps, logA, logB)
	}
	if put, got := sha256Of(t, logA, "f"), sha256Of(t, logB, "g"); put != got {
		t.Errorf("step a put a file with SHA-256 %s, step b got one with %s", put, got)
	}
	if !strings.HasPrefix(logA, "lo\n") {
		t.Errorf("step a had a network other than none:\n%s", logA)
	}
	for _, want := range []string{
		"cacher: stored build/blob.bin (10485760 bytes, sha256 ",
		`put ../x: exit 1: cacher: put: artifact key "../x": a path segment must not be ".."` + "\n",
		`put /etc/passwd: exit 1: cacher: put: artifact key "/etc/passwd": it must be relative, not start with '/'` + "\n",
	} {
		if !strings.Contains(logA, want) {
			t.Errorf("log of a lacks %q:\n%s", want, logA)
		}
	}
	if want := `get ../x: exit 1: cacher: get: artifact key "../x": a path segment must not be ".."` + "\n"; !strings.Contains(logB, want) {
		t.Errorf("log of b lacks %q:\n%s", want, logB)
	}
	t.Logf("10 MiB: put %s, get %s; run %s (agents %s and %s)", took(t, logA, "stored"), took(t, logB, "fetched"),
		elapsed.Round(time.Millisecond), run.step(t, "a").AgentID[:8], run.step(t, "b").AgentID[:8])
	// The server keeps the content under the run, not under the key.
	files, _ := filepath.Glob(filepath.Join(s.dataDir, "artifacts", run.ID, "*"))
	if len(files) != 1 {
		t.Errorf("artifact files of the run: %v", files)
	} else if info, err := os.Stat(files[0]); err != nil || info.Size() != 10485760 {
		t.Errorf("stored artifact: %v %v", info, err)
	}
}

// An artifact put by one run is not visible to another: the server scopes
// by the run of the step whose lease the agent presents.
func TestCacherArtifactsStayInTheirRun(t *testing.T) {
	t.Parallel()
	s := fleet(t)
	first := s.submit(t, "cacher", "steps:\n  - name: put\n    command: echo first-run > f; cacher put shared/k f\n")
	if r := s.waitRun(t, first.ID, 60*time.Second); r.State != "succeeded" {
		t.Fatalf("first run %s: %s", r.State, s.stepLog(t, first.ID, "put"))
	}
	second := s.submit(t, "cacher", `
steps:
  - name: get
    command: |
      code=0; cacher get shared/k f 2> err || code=$?
      echo "exit $code: $(cat err)"
      echo second-run > f; cacher put shared/k f 2>&1; cacher get shared/k g 2>&1; cat g
`)
	r := s.waitRun(t, second.ID, 60*time.Second)
	log := s.stepLog(t, second.ID, "get")
	if r.State != "succeeded" || !strings.Contains(log, `exit 1: cacher: get: server answered 404 Not Found: no artifact "shared/k" in this run`+"\n") ||
		!strings.HasSuffix(log, "second-run\n") {
		t.Errorf("second run %s; log:\n%s", r.State, log)
	}
}

// cacher mask hides a value printed after it, and refuses a short one;
// cacher output sets an output shown in the run view.
func TestCacherMaskAndOutput(t *testing.T) {
	t.Parallel()
	s := fleet(t)
	run := s.submit(t, "cacher", `
steps:
  - name: use
    command: |
      token="tok-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
      cacher mask "$token"
      echo "token is $token"
      cacher mask abc12 || echo "short value refused"
      cacher output greeting "hello from cacher"
      cacher output leak "$token"
  - name: after
    depends_on: [use]
    command: echo "got ${{ steps.use.outputs.greeting }}"
`)
	run = s.waitRun(t, run.ID, 60*time.Second)
	log := s.stepLog(t, run.ID, "use")
	if run.State != "succeeded" {
		t.Fatalf("run %s: %+v\n%s", run.State, run.Steps, log)
	}
	if !strings.Contains(log, "token is ***\n") || strings.Contains(log, "tok-") {
		t.Errorf("the value masked at runtime shows:\n%s", log)
	}
	if !strings.Contains(log, "cacher: mask: refused: the value has 5 characters; values shorter than 6 are not masked") ||
		!strings.Contains(log, "short value refused\n") || strings.Contains(log, "abc12") {
		t.Errorf("a short value was not refused clearly:\n%s", log)
	}
	use := run.step(t, "use")
	if use.Outputs["greeting"] != "hello from cacher" || use.Outputs["leak"] != "***" {
		t.Errorf("outputs %v, want greeting set and leak masked", use.Outputs)
	}
	if got := s.stepLog(t, run.ID, "after"); got != "got hello from cacher\n" {
		t.Errorf("the next step saw %q", got)
	}
}
