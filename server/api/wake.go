package api

import (
	"container/list"
	"sync"
	"time"
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
//
// An idle agent need not hold a poll open: it parks (Park), and a wake that
// reaches it is a "work" hint on its control channel, after which it
// polls. Waiting polls are woken before parked agents (they answer
// fastest); a hinted agent that does not poll within hintAnswer has its
// wake given to another.
type Wake struct {
	mu        sync.Mutex
	waiting   *list.List // of *Waiter, oldest first
	parked    *list.List // of *parkedAgent, oldest first
	byAgent   map[string]*parkedAgent
	hinted    map[string]*hint // parked agents hinted, not yet polling
	broadcast func()
	due       func(limit int) int
}

// parkedAgent is an agent waiting for a hint instead of a held poll.
type parkedAgent struct {
	id   string
	hint func() bool // delivers the hint; false if it cannot reach the agent
	elem *list.Element
}

// hint is a wake a parked agent was hinted with: hops as Waiter.C yields.
type hint struct {
	hops  int
	timer *time.Timer
}

// hintAnswer is how long a hinted agent has to poll before its wake goes
// to another.
const hintAnswer = 2 * time.Second

// Waiter is one registered wait. C yields a wake's hop count: how often it
// was passed on (-1: a wake of everyone, not to be passed on).
type Waiter struct {
	c    chan int
	w    *Wake
	elem *list.Element // nil once woken or stopped
}

// NewWake returns a Wake with no waiters.
func NewWake() *Wake {
	return &Wake{waiting: list.New(), parked: list.New(), byAgent: map[string]*parkedAgent{}, hinted: map[string]*hint{}}
}

// SetDue gives a wake of everyone a bound for parked agents: due(limit)
// counts the steps any agent could take now, up to limit; only that many
// parked agents are hinted (waiting polls are all woken). Without it, a
// wake of everyone hints every parked agent.
func (w *Wake) SetDue(due func(limit int) int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.due = due
}

// Park registers an idle agent to be woken by hint rather than through a
// held poll; it replaces the agent's earlier registration. hint must not
// block.
func (w *Wake) Park(agentID string, hint func() bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.unparkLocked(agentID)
	p := &parkedAgent{id: agentID, hint: hint}
	p.elem = w.parked.PushBack(p)
	w.byAgent[agentID] = p
}

// Unpark ends the agent's registration (it polls again) and returns the
// hops of the wake it was hinted with and has not used, or -1.
func (w *Wake) Unpark(agentID string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.unparkLocked(agentID)
}

func (w *Wake) unparkLocked(agentID string) int {
	if p := w.byAgent[agentID]; p != nil {
		w.parked.Remove(p.elem)
		delete(w.byAgent, agentID)
	}
	if h := w.hinted[agentID]; h != nil {
		h.timer.Stop()
		delete(w.hinted, agentID)
		return h.hops
	}
	return -1
}

// IsParked reports whether the agent is parked here and was not hinted
// since: a poll from it now is its periodic look (protocol.ParkedRecheck).
func (w *Wake) IsParked(agentID string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.byAgent[agentID] != nil
}

// Parked is how many agents are parked here.
func (w *Wake) Parked() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.parked.Len()
}

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

// wake pops up to n waiters (all when n < 0) and sends them hops, then
// hints parked agents for what is left of n. It returns how many it woke.
// Called with mu held.
func (w *Wake) wake(n, hops int, skip *Waiter) int {
	woke := 0
	for e := w.waiting.Front(); e != nil && n != 0; {
		next := e.Next()
		wt := e.Value.(*Waiter)
		if wt != skip {
			w.waiting.Remove(e)
			wt.elem = nil
			wt.c <- hops // buffered, and each waiter is woken once
			n--
			woke++
		}
		e = next
	}
	return woke + w.hintParked(n, max(hops, 0))
}

// hintParked hints up to n parked agents (all when n < 0), oldest first;
// one the hint cannot reach (its channel is gone) is dropped and does not
// count. Called with mu held.
func (w *Wake) hintParked(n, hops int) int {
	woke := 0
	for n != 0 && w.parked.Len() > 0 {
		p := w.parked.Remove(w.parked.Front()).(*parkedAgent)
		delete(w.byAgent, p.id)
		if !p.hint() {
			continue
		}
		id := p.id
		w.hinted[id] = &hint{hops: hops, timer: time.AfterFunc(hintAnswer, func() { w.unanswered(id) })}
		n--
		woke++
	}
	return woke
}

// unanswered gives the wake of an agent that was hinted and did not poll
// to the next waiter or parked agent.
func (w *Wake) unanswered(agentID string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	h := w.hinted[agentID]
	if h == nil {
		return
	}
	delete(w.hinted, agentID)
	w.wake(1, h.hops, nil)
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
	due, parked := w.due, w.parked.Len()
	w.mu.Unlock()
	// Parked agents are hinted only as many as there are steps to take
	// (each passes its wake on if it cannot take one): 10,000 idle agents
	// must not all come asking for one new step.
	n := -1
	if due != nil && parked > 0 {
		n = due(parked)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.wake(w.waiting.Len(), -1, nil)
	if n != 0 {
		w.hintParked(n, 0)
	}
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
	if hops+1 >= w.waiting.Len()+w.parked.Len() { // hops+1 waiters have had it
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
