package store

import (
	"context"
	"errors"
	"sync"

	"gorm.io/gorm"
)

// On PostgreSQL, completions that arrive together share a transaction
// (pgGroup): one BEGIN and one COMMIT for all of them, and, as the
// transaction is a pipeline, each completion's writes and reservation go
// with the next one's first statements. Alone, a completion takes two
// round trips; n in a group take n + 1, and their statements do not wait
// for a free connection in turn.
//
// A group runs its completions one after another, each seeing what those
// before it wrote. Only its first may wait for a lock on its run: after
// it, a completion whose run another transaction holds leaves the group
// (errRunAlone) before it writes anything, and runs in a transaction of
// its own once the group has ended. So a group never waits for a run
// while it holds another, and two groups cannot wait on each other. If
// anything else in a group fails, nothing of the group stays and each of
// its completions runs again alone, where it gets its own outcome (the
// completions are transactions that may run again, as a deadlock's retry
// already needs).
type pgGroup struct {
	s     *DB
	queue chan *groupItem

	mu      sync.RWMutex // closed, and sending to queue
	closed  bool
	stop    chan struct{}
	wg      sync.WaitGroup
	gate    chan struct{} // tests: when set, a loop takes a group only when it receives from gate
	onBatch func(n int)   // tests: called with each group's size
}

// maxPGGroup bounds a group: its completions wait for the last of them.
const maxPGGroup = 16

// errRunAlone is how a completion leaves its group: it wrote nothing, and
// runs in a transaction of its own.
var errRunAlone = errors.New("run alone")

// newPGGroup starts loops goroutines that each run one group at a time.
func newPGGroup(s *DB, loops int, gate chan struct{}) *pgGroup {
	g := &pgGroup{s: s, queue: make(chan *groupItem, maxPGGroup*loops), stop: make(chan struct{}), gate: gate}
	for range loops {
		g.wg.Add(1)
		go g.loop()
	}
	return g
}

// do runs fn in a group, or alone (s.transaction) when it leaves one.
func (g *pgGroup) do(ctx context.Context, fn func(tx *gorm.DB) error) error {
	it := &groupItem{ctx: ctx, fn: fn, done: make(chan error, 1)}
	if !g.enqueue(ctx, it) {
		return g.s.transaction(ctx, fn)
	}
	// Queued: it may be committed already when ctx ends, so wait for the
	// outcome (a group is short).
	if err := <-it.done; !errors.Is(err, errRunAlone) {
		return err
	}
	return g.s.transaction(ctx, fn)
}

// enqueue queues it for a loop, unless the group is closed or ctx ends
// first.
func (g *pgGroup) enqueue(ctx context.Context, it *groupItem) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.closed {
		return false
	}
	select {
	case g.queue <- it:
		return true
	case <-ctx.Done():
		return false
	}
}

// close stops the loops after the groups they run; what is still queued
// runs alone.
func (g *pgGroup) close() {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return
	}
	g.closed = true
	g.mu.Unlock()
	close(g.stop)
	g.wg.Wait()
	for {
		select {
		case it := <-g.queue:
			it.done <- errRunAlone
		default:
			return
		}
	}
}

func (g *pgGroup) loop() {
	defer g.wg.Done()
	for {
		if g.gate != nil {
			select {
			case <-g.gate:
			case <-g.stop:
				return
			}
		}
		batch := nextBatch(g.queue, g.stop, maxPGGroup)
		if batch == nil {
			return
		}
		g.run(batch)
	}
}

// run runs one group and tells each completion its outcome.
func (g *pgGroup) run(batch []*groupItem) {
	if g.onBatch != nil {
		g.onBatch(len(batch))
	}
	if len(batch) == 1 {
		// The loop runs it, so that the loop stays busy while others
		// queue up for the next group.
		it := batch[0]
		it.done <- g.s.transaction(context.WithoutCancel(it.ctx), it.fn)
		return
	}
	errs := make([]error, len(batch))
	err := g.s.pipelined(context.WithoutCancel(batch[0].ctx), func(tx *gorm.DB) error {
		p := pipelineOf(tx)
		for i, it := range batch {
			if it.ctx.Err() != nil {
				errs[i] = errRunAlone // its caller has gone: alone, it finds out
				continue
			}
			p.grouped = i > 0
			if errs[i] = call(tx, it); errs[i] != nil && !errors.Is(errs[i], errRunAlone) {
				return errs[i]
			}
		}
		return nil
	})
	for i, it := range batch {
		if err != nil {
			it.done <- errRunAlone // nothing of the group stays: alone, it runs again
		} else {
			it.done <- errs[i]
		}
	}
}
