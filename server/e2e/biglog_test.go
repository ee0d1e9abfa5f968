package e2e

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
	"time"
)

// A 50 MB log arrives complete and in order.
func TestLargeLogArrivesWhole(t *testing.T) {
	t.Parallel()
	s := startServer(t, freeAddr(t), t.TempDir())
	startAgent(t, s, s.registrationToken(t), t.TempDir(), "big")
	waitAgents(t, s, 1)
	const lines = 6_500_000
	var want strings.Builder
	for i := 1; i <= lines; i++ {
		fmt.Fprintf(&want, "%d\n", i)
	}
	if want.Len() < 50_000_000 {
		t.Fatalf("test log is only %d bytes", want.Len())
	}
	run := s.submit(t, "big", fmt.Sprintf("steps:\n  - name: loud\n    command: seq 1 %d\n", lines))
	if got := s.waitRun(t, run.ID, 5*time.Minute); got.State != "succeeded" {
		t.Fatalf("run %+v", got)
	}
	log := s.stepLog(t, run.ID, "loud")
	if len(log) != want.Len() || sha256.Sum256([]byte(log)) != sha256.Sum256([]byte(want.String())) {
		t.Fatalf("log is %d bytes, want %d identical bytes", len(log), want.Len())
	}
	t.Logf("%d bytes arrived complete and in order", len(log))
}
