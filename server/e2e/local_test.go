package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// baton-agent run executes a runbook on this machine in real containers,
// with no server, printing progress and the logs of failed steps.
func TestLocalRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "runbook.yml")
	if err := os.WriteFile(file, []byte(diamond(`echo "b is broken"; exit 3`)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(binDir, "baton-agent"), "run", "--default-image", stepImage, file).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v, want 1\n%s", err, out)
	}
	text := string(out)
	for _, want := range []string{"▶ a", "✓ a", "✗ b (exit 3)", "✓ c", "– d skipped (upstream_failed)",
		"── log of b (attempt 1) ──\nb is broken\n", "run failed"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	if err := os.WriteFile(file, []byte(diamond(`echo fine`)), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(filepath.Join(binDir, "baton-agent"), "run", "--default-image", stepImage, file).CombinedOutput(); err != nil ||
		!strings.Contains(string(out), "run succeeded") {
		t.Fatalf("succeeding run: %v\n%s", err, out)
	}
}
