package store

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"gorm.io/gorm"
)

// groupCommit runs the write transactions of many callers in one SQLite
// transaction and one commit. SQLite has a single writer, so its
// transactions ran one after another anyway; what a commit costs (writing
// every changed page to the WAL) is then paid once for the batch, and the
// pages several of them change (the steps table and its indexes) are
// written once. Each caller's function runs inside its own savepoint: one
// that fails is rolled back alone and gets its own error, as if it had
// run in a transaction of its own. Callers that arrive while a batch runs
// form the next batch; a lone caller runs in a plain transaction.
type groupCommit struct {
	db    *gorm.DB
	queue chan *groupItem

	stopOnce sync.Once
	stop     chan struct{}
	stopped  chan struct{}

	onBatch func(n int) // tests: called with each batch's size
}

// maxGroup bounds a batch: its callers wait for the slowest of them.
const maxGroup = 64

type groupItem struct {
	ctx  context.Context
	fn   func(tx *gorm.DB) error
	done chan error
}

var errStoreClosed = errors.New("the database is closing")

func newGroupCommit(db *gorm.DB) *groupCommit {
	g := &groupCommit{db: db, queue: make(chan *groupItem, maxGroup),
		stop: make(chan struct{}), stopped: make(chan struct{})}
	go g.loop()
	return g
}

// do runs fn in the next batch and returns its outcome once the batch has
// committed (or failed).
func (g *groupCommit) do(ctx context.Context, fn func(tx *gorm.DB) error) error {
	it := &groupItem{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case g.queue <- it:
	case <-ctx.Done():
		return ctx.Err()
	case <-g.stop:
		return errStoreClosed
	}
	// Queued: it may be committed already when ctx ends, so wait for the
	// outcome (a batch is short; an item whose ctx ended is skipped).
	select {
	case err := <-it.done:
		return err
	case <-g.stopped:
		select {
		case err := <-it.done:
			return err
		default:
			return errStoreClosed
		}
	}
}

// close stops the loop after the batch it runs.
func (g *groupCommit) close() {
	g.stopOnce.Do(func() { close(g.stop) })
	<-g.stopped
}

func (g *groupCommit) loop() {
	defer close(g.stopped)
	for {
		batch := nextBatch(g.queue, g.stop, maxGroup)
		if batch == nil {
			return
		}
		g.run(batch)
	}
}

// nextBatch waits for an item on queue, then takes those queued after it,
// up to max in all; nil once stop is closed.
func nextBatch(queue <-chan *groupItem, stop <-chan struct{}, max int) []*groupItem {
	var batch []*groupItem
	select {
	case it := <-queue:
		batch = append(batch, it)
	case <-stop:
		return nil
	}
	for len(batch) < max {
		select {
		case it := <-queue:
			batch = append(batch, it)
		default:
			return batch
		}
	}
	return batch
}

// run commits one batch and tells each caller its outcome.
func (g *groupCommit) run(batch []*groupItem) {
	if g.onBatch != nil {
		g.onBatch(len(batch))
	}
	errs := make([]error, len(batch))
	err := g.db.Transaction(func(tx *gorm.DB) error {
		if len(batch) == 1 {
			errs[0] = call(tx, batch[0])
			return errs[0]
		}
		for i, it := range batch {
			if err := tx.Exec(`SAVEPOINT grouped`).Error; err != nil {
				return fmt.Errorf("savepoint: %w", err)
			}
			if errs[i] = call(tx, it); errs[i] != nil {
				if err := tx.Exec(`ROLLBACK TO grouped`).Error; err != nil {
					return fmt.Errorf("roll back to savepoint: %w", err)
				}
			}
			if err := tx.Exec(`RELEASE grouped`).Error; err != nil {
				return fmt.Errorf("release savepoint: %w", err)
			}
		}
		return nil
	})
	for i, it := range batch {
		switch {
		case errs[i] != nil:
			it.done <- errs[i]
		case err != nil:
			it.done <- err // the batch did not commit: nor did this
		default:
			it.done <- nil
		}
	}
}

// call runs one caller's function on the batch's transaction with the
// caller's context values; a panic becomes its error.
func call(tx *gorm.DB, it *groupItem) (err error) {
	if err := it.ctx.Err(); err != nil {
		return err
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in a transaction: %v", p)
		}
	}()
	// Without the caller's cancellation: the batch's transaction is not
	// the caller's to interrupt, and database/sql watches a cancellable
	// context with a goroutine of its own for every query (about 20 a
	// step). A caller that went away before its turn is skipped above.
	return it.fn(tx.WithContext(context.WithoutCancel(it.ctx)))
}
