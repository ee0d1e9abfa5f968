package gcpace

import (
	"context"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		live, headroom uint64
		want           int
	}{
		{20 * mib, 64 * mib, 320},  // small heap: grows by the headroom
		{64 * mib, 64 * mib, 100},  // at the headroom: the default
		{400 * mib, 64 * mib, 100}, // large heap: never below the default
		{1 * mib, 64 * mib, 1000},  // tiny heap: capped
		{0, 64 * mib, 1000},
	} {
		if got := Percent(c.live, c.headroom); got != c.want {
			t.Errorf("Percent(%d MiB, %d MiB) = %d, want %d", c.live/mib, c.headroom/mib, got, c.want)
		}
	}
}

func TestRunRaisesGOGCForASmallHeap(t *testing.T) {
	t.Setenv("GOGC", "")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	runtime.GC() // the live heap is known
	go func() { defer close(done); Run(ctx, 1<<40, time.Millisecond) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p := gogc()
		if p == 1000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GOGC is %d, want 1000 for a heap far below the headroom", p)
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if p := gogc(); p != 100 {
		t.Errorf("GOGC after Run is %d, want it restored to 100", p)
	}
}

// gogc reads GOGC without setting it.
func gogc() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}
