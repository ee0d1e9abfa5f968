package api

import (
	"container/list"
	"sync"
)

// Wake tells waiting long-polls that steps may have become Ready. A waiter
// registers (Wait) before it looks at the database, so a wake between the
// look and the wait is never missed. It is a hint: the database is the
// truth, and waiters also rescan on a timer.
//
// NotifyN wakes only as many waiters as steps became Ready, in the order
// they started waiting, instead of every one (with 100 agents waiting,
// waking all of them for each finished step made each dispatch cost 100
// database rounds). A woken waiter that takes no step (it lacks the step's
// labels, or was disabled) passes its wake to the next (Pass), at most once
// per other waiter, so a step no waiter can take costs what a broadcast did.
type Wake struct {
	mu        sync.Mutex
	waiting   *list.List // of *Waiter, oldest first
	broadcast func()
}

// Waiter is one registered wait. C yields a wake's hop count: how often it
// was passed on (-1: a wake of everyone, not to be passed on).
type Waiter struct {
	c    chan int
	w    *Wake
	elem *list.Element // nil once woken or stopped
}

// NewWake returns a Wake with no waiters.
func NewWake() *Wake { return &Wake{waiting: list.New()} }

// SetBroadcast makes every Notify also call f, which tells the other server
// replicas (PostgreSQL NOTIFY). f must not block.
func (w *Wake) SetBroadcast(f func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.broadcast = f
}

// Wait registers a waiter; call Stop when done waiting.
func (w *Wake) Wait() *Waiter {
	wt := &Waiter{c: make(chan int, 1), w: w}
	w.mu.Lock()
	wt.elem = w.waiting.PushBack(wt)
	w.mu.Unlock()
	return wt
}

// C yields the wake.
func (wt *Waiter) C() <-chan int { return wt.c }

// Stop unregisters a waiter that was not woken.
func (wt *Waiter) Stop() {
	wt.w.mu.Lock()
	defer wt.w.mu.Unlock()
	if wt.elem != nil {
		wt.w.waiting.Remove(wt.elem)
		wt.elem = nil
	}
}

// wake pops up to n waiters (all when n < 0) and sends them hops. Called
// with mu held.
func (w *Wake) wake(n, hops int, skip *Waiter) {
	for e := w.waiting.Front(); e != nil && n != 0; {
		next := e.Next()
		wt := e.Value.(*Waiter)
		if wt != skip {
			w.waiting.Remove(e)
			wt.elem = nil
			wt.c <- hops // buffered, and each waiter is woken once
			n--
		}
		e = next
	}
}

// Notify wakes every current waiter, and those of the other replicas: for
// changes that concern all of them (an agent's state, a limit raised, a
// run whose entry steps became Ready).
func (w *Wake) Notify() {
	w.broadcastOthers()
	w.NotifyLocal()
}

// NotifyN wakes n waiters here (n steps became Ready), and the other
// replicas' waiters.
func (w *Wake) NotifyN(n int) {
	if n <= 0 {
		return
	}
	w.broadcastOthers()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.wake(n, 0, nil)
}

// NotifyLocal wakes this process's waiters only: for a wake another replica
// sent.
func (w *Wake) NotifyLocal() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.wake(-1, -1, nil)
}

// Pass hands a wake that from could not use (hops as received) to the next
// waiter, unless it was a wake of everyone or has been passed to as many
// waiters as there are.
func (w *Wake) Pass(hops int, from *Waiter) {
	if hops < 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if hops+1 >= w.waiting.Len() { // hops+1 waiters have had it
		return
	}
	w.wake(1, hops+1, from)
}

func (w *Wake) broadcastOthers() {
	w.mu.Lock()
	broadcast := w.broadcast
	w.mu.Unlock()
	if broadcast != nil {
		broadcast()
	}
}
