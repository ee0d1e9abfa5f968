package api_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

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

// parkedAgents records the hints parked agents get.
type parkedAgents struct {
	mu     sync.Mutex
	hinted []string
}

// park parks id on w with a hint that reaches it when reachable says so.
func (p *parkedAgents) park(w *api.Wake, id string, reachable bool) {
	w.Park(id, func() bool {
		if reachable {
			p.mu.Lock()
			p.hinted = append(p.hinted, id)
			p.mu.Unlock()
		}
		return reachable
	})
}

// got is the agents hinted so far, in order.
func (p *parkedAgents) got() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.hinted, " ")
}

// A counted wake goes to held polls first, then to parked agents, oldest
// first; Unpark returns the hops of a hint the agent has not used, once,
// and -1 for an agent that was parked but not hinted.
func TestWakeHintsParkedAgentsAfterWaiters(t *testing.T) {
	t.Parallel()
	w := api.NewWake()
	var p parkedAgents
	p.park(w, "p1", true)
	a := w.Wait()
	p.park(w, "p2", true)
	p.park(w, "p3", true)
	if n := w.Parked(); n != 3 {
		t.Fatalf("Parked() = %d, want 3", n)
	}
	w.NotifyN(1)
	if h, ok := woken(a); !ok || h != 0 {
		t.Fatalf("the held poll was not woken first: %d %v", h, ok)
	}
	if got := p.got(); got != "" {
		t.Fatalf("NotifyN(1) with a held poll also hinted %q", got)
	}
	w.NotifyN(1)
	if got := p.got(); got != "p1" {
		t.Fatalf("hinted %q, want the oldest parked agent, p1", got)
	}
	if n := w.Parked(); n != 2 {
		t.Errorf("Parked() = %d after a hint, want 2", n)
	}
	if h := w.Unpark("p1"); h != 0 {
		t.Errorf("Unpark of the hinted agent = %d, want its hint's hops 0", h)
	}
	if h := w.Unpark("p1"); h != -1 {
		t.Errorf("second Unpark = %d, want -1: the hint is used once", h)
	}
	if h := w.Unpark("p2"); h != -1 {
		t.Errorf("Unpark of an agent never hinted = %d, want -1", h)
	}
	if h := w.Unpark("never-parked"); h != -1 {
		t.Errorf("Unpark of an unknown agent = %d, want -1", h)
	}
	if n := w.Parked(); n != 1 {
		t.Errorf("Parked() = %d, want 1 (p3)", n)
	}
	b := w.Wait()
	w.NotifyN(3) // one held poll, one parked agent: both, and no more
	if h, ok := woken(b); !ok || h != 0 {
		t.Errorf("held poll not woken by NotifyN(3): %d %v", h, ok)
	}
	if got := p.got(); got != "p1 p3" {
		t.Errorf("hinted %q, want p1 p3", got)
	}
}

// A hint that cannot reach its agent (its channel is gone) does not count:
// the next parked agent is hinted instead, and the unreachable one is no
// longer parked.
func TestWakeUnreachableHintDoesNotCount(t *testing.T) {
	t.Parallel()
	w := api.NewWake()
	var p parkedAgents
	p.park(w, "gone", false)
	p.park(w, "here", true)
	p.park(w, "later", true)
	w.NotifyN(1)
	if got := p.got(); got != "here" {
		t.Fatalf("hinted %q, want here (gone cannot be reached)", got)
	}
	if n := w.Parked(); n != 1 {
		t.Errorf("Parked() = %d, want 1 (later)", n)
	}
	if h := w.Unpark("gone"); h != -1 {
		t.Errorf("Unpark(gone) = %d, want -1: its hint did not reach it", h)
	}
	if h := w.Unpark("here"); h != 0 {
		t.Errorf("Unpark(here) = %d, want 0", h)
	}
}

// Park replaces an agent's earlier registration: one entry, the latest
// hint, and its place at the back of the line.
func TestWakeParkReplaces(t *testing.T) {
	t.Parallel()
	w := api.NewWake()
	var old, p parkedAgents
	old.park(w, "x", true)
	p.park(w, "y", true)
	p.park(w, "x", true)
	if n := w.Parked(); n != 2 {
		t.Fatalf("Parked() = %d, want 2", n)
	}
	w.NotifyN(1)
	if got := p.got(); got != "y" {
		t.Fatalf("hinted %q, want y: x parked again after it", got)
	}
	w.NotifyN(1)
	if got, gotOld := p.got(), old.got(); got != "y x" || gotOld != "" {
		t.Errorf("hinted %q (earlier registration: %q), want y x through the latest registration only", got, gotOld)
	}
	if n := w.Parked(); n != 0 {
		t.Errorf("Parked() = %d, want 0", n)
	}
}

// A wake of everyone wakes every held poll but hints only as many parked
// agents as SetDue's count says steps are due (asked with the number
// parked as the limit); without SetDue it hints them all.
func TestWakeOfEveryoneHintsDueParkedAgents(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		due    int // -1: no SetDue
		notify func(*api.Wake)
		want   string
	}{
		{"NotifyLocal, 2 due", 2, (*api.Wake).NotifyLocal, "p0 p1"},
		{"Notify, 2 due", 2, (*api.Wake).Notify, "p0 p1"},
		{"Notify, none due", 0, (*api.Wake).Notify, ""},
		{"Notify, more due than parked", 9, (*api.Wake).Notify, "p0 p1 p2 p3"},
		{"NotifyLocal without SetDue", -1, (*api.Wake).NotifyLocal, "p0 p1 p2 p3"},
		{"Notify without SetDue", -1, (*api.Wake).Notify, "p0 p1 p2 p3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := api.NewWake()
			var limits []int
			if tc.due >= 0 {
				w.SetDue(func(limit int) int {
					limits = append(limits, limit)
					return min(tc.due, limit)
				})
			}
			var p parkedAgents
			for i := range 4 {
				p.park(w, fmt.Sprint("p", i), true)
			}
			a, b := w.Wait(), w.Wait()
			tc.notify(w)
			for _, x := range []*api.Waiter{a, b} {
				if h, ok := woken(x); !ok || h != -1 {
					t.Errorf("a held poll was not woken by a wake of everyone (%d, %v)", h, ok)
				}
			}
			if got := p.got(); got != tc.want {
				t.Errorf("hinted %q, want %q", got, tc.want)
			}
			if tc.due >= 0 && fmt.Sprint(limits) != "[4]" {
				t.Errorf("due asked with limits %v, want [4] (the parked agents)", limits)
			}
			// A hinted agent may pass the wake on if it takes nothing: its
			// hint is counted (hops 0), not a wake of everyone (-1).
			if tc.want != "" {
				if h := w.Unpark("p0"); h != 0 {
					t.Errorf("Unpark(p0) = %d, want 0", h)
				}
			}
		})
	}
}

// Pass counts parked agents among those who may still have a wake: a held
// poll that cannot use its wake passes it to a parked agent, and it stops
// once every waiter and parked agent has had it.
func TestWakePassCountsParkedAgents(t *testing.T) {
	t.Parallel()
	w := api.NewWake()
	var p parkedAgents
	a := w.Wait()
	p.park(w, "p", true)
	w.NotifyN(1)
	if h, ok := woken(a); !ok || h != 0 {
		t.Fatalf("held poll not woken: %d %v", h, ok)
	}
	a = w.Wait() // it took nothing: it waits again and passes the wake on
	w.Pass(0, a)
	if got := p.got(); got != "p" {
		t.Fatalf("Pass hinted %q, want the parked agent p", got)
	}
	if _, ok := woken(a); ok {
		t.Fatal("Pass woke the waiter that passed it")
	}
	// p polls, takes nothing, and passes the wake (hops 1) on: a and p have
	// had it, so it stops.
	h := w.Unpark("p")
	if h != 1 {
		t.Fatalf("Unpark(p) = %d, want 1 (passed once)", h)
	}
	p.park(w, "p", true)
	w.Pass(h, nil)
	if _, ok := woken(a); ok {
		t.Error("the wake went round a second time to the held poll")
	}
	if got := p.got(); got != "p" {
		t.Errorf("hinted %q, want only the first hint of p", got)
	}
}

// A hinted agent that does not poll within the hint answer time (2 s) has
// its wake given to the next parked agent, with the same hops; one that
// polls in time keeps it.
func TestWakeUnansweredHintGoesToAnother(t *testing.T) {
	t.Parallel()
	w := api.NewWake()
	var p parkedAgents
	for _, id := range []string{"answers", "silent", "next"} {
		p.park(w, id, true)
	}
	start := time.Now()
	w.NotifyN(2)
	if got := p.got(); got != "answers silent" {
		t.Fatalf("hinted %q, want answers silent", got)
	}
	if h := w.Unpark("answers"); h != 0 { // it polls at once
		t.Fatalf("Unpark(answers) = %d, want 0", h)
	}
	deadline := time.Now().Add(10 * time.Second)
	for p.got() == "answers silent" {
		if time.Now().After(deadline) {
			t.Fatal("the unanswered hint was not given to another parked agent within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if took := time.Since(start); took < 2*time.Second {
		t.Errorf("the hint was given on after %s; the hinted agent has 2s to poll", took)
	}
	if got := p.got(); got != "answers silent next" {
		t.Errorf("hinted %q, want answers silent next", got)
	}
	if h := w.Unpark("silent"); h != -1 {
		t.Errorf("Unpark(silent) = %d after its wake went on, want -1", h)
	}
	if h := w.Unpark("next"); h != 0 {
		t.Errorf("Unpark(next) = %d, want 0", h)
	}
}
