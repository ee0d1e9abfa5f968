package api_test

import (
	"testing"

	"github.com/baton-ci/baton/server/api"
)

func woken(w *api.Waiter) (int, bool) {
	select {
	case h := <-w.C():
		return h, true
	default:
		return 0, false
	}
}

// Notify wakes local waiters and calls the broadcast hook; NotifyLocal, for
// a wake from another replica, does not pass it on again.
func TestWakeBroadcast(t *testing.T) {
	t.Parallel()
	w := api.NewWake()
	broadcasts := 0
	w.SetBroadcast(func() { broadcasts++ })
	for _, notify := range []func(){w.Notify, w.NotifyLocal} {
		a, b := w.Wait(), w.Wait()
		notify()
		for _, x := range []*api.Waiter{a, b} {
			if h, ok := woken(x); !ok || h != -1 {
				t.Fatalf("a waiter was not woken by a wake of everyone (%d, %v)", h, ok)
			}
		}
	}
	if broadcasts != 1 {
		t.Errorf("%d broadcasts, want 1 (Notify only)", broadcasts)
	}
}

// NotifyN wakes n waiters, oldest first; a waiter that cannot use its wake
// passes it on, at most once per waiter; stopped waiters are not woken.
func TestWakeCountsAndPasses(t *testing.T) {
	t.Parallel()
	w := api.NewWake()
	a, b, c, gone := w.Wait(), w.Wait(), w.Wait(), w.Wait()
	gone.Stop()
	w.NotifyN(1)
	if h, ok := woken(a); !ok || h != 0 {
		t.Fatalf("the oldest waiter was not woken: %d %v", h, ok)
	}
	if _, ok := woken(b); ok {
		t.Fatal("NotifyN(1) woke two waiters")
	}
	// a cannot use it: it waits again and passes the wake on.
	a = w.Wait()
	w.Pass(0, a)
	if h, ok := woken(b); !ok || h != 1 {
		t.Fatalf("the wake was not passed to b: %d %v", h, ok)
	}
	b = w.Wait()
	w.Pass(1, b)
	if h, ok := woken(c); !ok || h != 2 {
		t.Fatalf("the wake was not passed to c: %d %v", h, ok)
	}
	c = w.Wait()
	w.Pass(2, c) // a and b already had it (3 waiters, 3 hops): it stops
	for _, x := range []*api.Waiter{a, b, c, gone} {
		if _, ok := woken(x); ok {
			t.Fatal("a wake went round more than once")
		}
	}
}
