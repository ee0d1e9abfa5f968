package api

import "sync"

// Wake tells waiting long-polls that steps may have become Ready. Waiters
// take the channel before they look at the database, so a Notify between the
// look and the wait is never missed. It is a hint: the database is the truth.
type Wake struct {
	mu sync.Mutex
	ch chan struct{}
}

// NewWake returns a Wake with no pending notification.
func NewWake() *Wake { return &Wake{ch: make(chan struct{})} }

// C returns a channel closed at the next Notify.
func (w *Wake) C() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ch
}

// Notify wakes every current waiter.
func (w *Wake) Notify() {
	w.mu.Lock()
	defer w.mu.Unlock()
	close(w.ch)
	w.ch = make(chan struct{})
}
