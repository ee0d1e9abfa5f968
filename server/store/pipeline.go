package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/gorm"
)

// A PostgreSQL transaction is a pipeline: on PostgreSQL every statement is
// a round trip to another process, and on a machine the database shares,
// the round trips (each a write to a socket, a wake-up on either side)
// cost more than the statements (docs/performance.md). So a transaction
// sends what it can together:
//
//   - BEGIN is not sent on its own: it goes with the first statement.
//   - A write whose answer decides nothing (s.write) waits, and goes with
//     the next statement that has to be answered, or with COMMIT.
//   - The hot path's statements (s.exec, s.query, s.queryRow) are sent as
//     one pgx batch with what waits before them: one round trip.
//
// Everything else in the transaction (gorm's statements) goes through the
// pipeline's ConnPool methods, which first send what waits, so every
// statement still sees the writes made before it, in order. An error in
// a write that waited is returned by the statement it went with, naming
// the write; the transaction is then rolled back, as it would have been.
type pipeline struct {
	conn    *sql.Conn // the transaction's connection: gorm's statements
	pg      *pgx.Conn // the same connection, for batches
	waiting []waitingWrite
	begun   bool  // BEGIN has been sent
	err     error // the first statement that failed: the transaction's error
	// grouped: the transaction runs a group of completions (pgGroup), and
	// the one running now is not its first: it must not wait for a lock.
	grouped bool
}

// waitingWrite is a statement not sent yet: a write, or a query whose
// rows read takes when they come (readLater).
type waitingWrite struct {
	what string // for an error: what the statement does
	sql  string
	args []any
	read func(resultRows) error
}

var (
	_ gorm.ConnPool    = (*pipeline)(nil)
	_ gorm.TxCommitter = (*pipeline)(nil) // gorm nests transactions in it as savepoints
)

// pipelined runs fn in a PostgreSQL transaction sent as a pipeline.
func (s *DB) pipelined(ctx context.Context, fn func(tx *gorm.DB) error) (err error) {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	p := &pipeline{conn: conn}
	if err := conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("begin: connection is %T, not pgx's", dc)
		}
		p.pg = c.Conn()
		return nil
	}); err != nil {
		conn.Close()
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic in a transaction: %v", r) // as the SQLite group commit says it
		}
		if err != nil {
			// The statements the pipeline sends outside database/sql do
			// not tell it that a connection broke: one left in a
			// transaction is closed, which database/sql then drops.
			if rerr := p.rollback(ctx); rerr != nil || p.pg.PgConn().TxStatus() != 'I' {
				_ = p.pg.Close(context.WithoutCancel(ctx))
			}
		}
		conn.Close()
	}()
	tx := s.db.Session(&gorm.Session{Context: ctx, NewDB: true})
	tx.Statement.ConnPool = p
	p.waiting = append(p.waiting, waitingWrite{what: "begin", sql: "begin"})
	err = fn(tx)
	if p.err != nil {
		// What failed first: the error fn saw may be a consequence (a
		// statement in a transaction already aborted).
		return p.err
	}
	if err != nil {
		return err
	}
	return p.commit(ctx)
}

// pipelineOf is tx's pipeline, if it runs in one.
func pipelineOf(tx *gorm.DB) *pipeline {
	p, _ := tx.Statement.ConnPool.(*pipeline)
	return p
}

// send sends what waits with one more statement (q; none if empty), as
// one batch, and reads the answers to what waited. The caller reads q's
// answer from the results it gets, then closes them.
func (p *pipeline) send(ctx context.Context, q string, args []any) (pgx.BatchResults, error) {
	if p.err != nil {
		return nil, p.err
	}
	b := &pgx.Batch{}
	for _, w := range p.waiting {
		b.Queue(w.sql, w.args...)
	}
	if q != "" {
		b.Queue(q, args...)
	}
	waiting := p.waiting
	p.waiting = p.waiting[:0]
	if len(b.QueuedQueries) == 0 {
		return nil, nil
	}
	p.begun = true
	br := p.pg.SendBatch(ctx, b)
	for _, w := range waiting {
		if err := answer(br, w); err != nil {
			br.Close()
			if what := whatFailed(err, w, waiting); what != "" {
				err = fmt.Errorf("%s: %w", what, err)
			}
			return nil, p.fail(err)
		}
	}
	return br, nil
}

// whatFailed names the statement of a batch that err is about: the one
// whose answer it came with (w), unless the batch failed before any ran
// (a statement it could not prepare, whose SQL the error holds: "" if it
// is not one that waited).
func whatFailed(err error, w waitingWrite, batch []waitingWrite) string {
	var pre pgx.ErrPreprocessingBatch
	if !errors.As(err, &pre) {
		return w.what
	}
	for _, b := range batch {
		if b.sql == pre.SQL() {
			return b.what
		}
	}
	return ""
}

// answer reads the answer to w from br: its rows, for a query.
func answer(br pgx.BatchResults, w waitingWrite) error {
	if w.read == nil {
		_, err := br.Exec()
		return err
	}
	rows, err := br.Query()
	if err != nil {
		return err
	}
	r := pgxRows{rows}
	defer r.Close()
	if err := w.read(r); err != nil {
		return err
	}
	return r.Close()
}

// pgxRows are pgx's rows as resultRows.
type pgxRows struct{ pgx.Rows }

func (r pgxRows) Close() error { r.Rows.Close(); return r.Rows.Err() }

// fail records err as the transaction's, if it is the first, and returns it.
func (p *pipeline) fail(err error) error {
	if p.err == nil {
		p.err = err
	}
	return err
}

// flush sends what waits.
func (p *pipeline) flush(ctx context.Context) error {
	if len(p.waiting) == 0 {
		return nil
	}
	br, err := p.send(ctx, "", nil)
	if err != nil {
		return err
	}
	return br.Close()
}

// write queues statement q (with $n placeholders) to go with the next one.
func (p *pipeline) write(what, q string, args []any) {
	p.waiting = append(p.waiting, waitingWrite{what: what, sql: q, args: args})
}

// readLater queues query q (with $n placeholders) to go with the next
// statement; read gets its rows then.
func (p *pipeline) readLater(what, q string, args []any, read func(resultRows) error) {
	p.waiting = append(p.waiting, waitingWrite{what: what, sql: q, args: args, read: read})
}

// exec sends statement q with what waits.
func (p *pipeline) exec(ctx context.Context, q string, args []any) (sql.Result, error) {
	br, err := p.send(ctx, q, args)
	if err != nil {
		return nil, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, p.fail(err)
	}
	return tagResult(tag), nil
}

// query sends query q with what waits; its rows must be closed before the
// transaction's next statement.
func (p *pipeline) query(ctx context.Context, q string, args []any) (resultRows, error) {
	br, err := p.send(ctx, q, args)
	if err != nil {
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		br.Close()
		return nil, p.fail(err)
	}
	return &batchRows{rows: rows, br: br, p: p}, nil
}

// commit sends what waits with COMMIT.
func (p *pipeline) commit(ctx context.Context) error {
	if !p.begun && len(p.waiting) == 1 {
		p.waiting = nil // nothing was done: nothing to send
		return nil
	}
	br, err := p.send(ctx, "commit", nil)
	if err != nil {
		return err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return p.fail(fmt.Errorf("commit: %w", err))
	}
	if tag.String() != "COMMIT" {
		return p.fail(fmt.Errorf("commit: %w", pgx.ErrTxCommitRollback))
	}
	return nil
}

// rollback ends the transaction, if BEGIN was sent; what waits is dropped.
func (p *pipeline) rollback(ctx context.Context) error {
	p.waiting = nil
	if !p.begun {
		return nil
	}
	_, err := p.pg.Exec(context.WithoutCancel(ctx), "rollback")
	return err
}

// gorm's statements: what waits is sent first, then the statement as usual.

func (p *pipeline) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	if err := p.flush(ctx); err != nil {
		return nil, err
	}
	return p.conn.PrepareContext(ctx, query)
}

func (p *pipeline) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if strings.HasPrefix(query, "ROLLBACK TO SAVEPOINT ") {
		// What failed after the savepoint is undone, and what waits
		// would be.
		p.waiting, p.err = p.waiting[:0], nil
		return p.conn.ExecContext(ctx, query, args...)
	}
	if err := p.flush(ctx); err != nil {
		return nil, err
	}
	return p.conn.ExecContext(ctx, query, args...)
}

func (p *pipeline) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if err := p.flush(ctx); err != nil {
		return nil, err
	}
	return p.conn.QueryContext(ctx, query, args...)
}

// QueryRowContext cannot return a write's error in a *sql.Row: the error
// is the transaction's (pipelined returns it), and the statement runs in
// the transaction the error aborted, so it fails too.
func (p *pipeline) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	_ = p.flush(ctx)
	return p.conn.QueryRowContext(ctx, query, args...)
}

// Commit and Rollback are never called: the pipeline's transaction is
// ended by pipelined. They make gorm treat it as a transaction.
func (p *pipeline) Commit() error   { return errors.New("pipeline: commit through pipelined") }
func (p *pipeline) Rollback() error { return errors.New("pipeline: roll back through pipelined") }

// tagResult is a command tag as a sql.Result.
type tagResult pgconn.CommandTag

func (t tagResult) LastInsertId() (int64, error) {
	return 0, errors.New("no LastInsertId on PostgreSQL")
}
func (t tagResult) RowsAffected() (int64, error) { return pgconn.CommandTag(t).RowsAffected(), nil }

// batchRows are the rows of a pipelined query.
type batchRows struct {
	rows   pgx.Rows
	br     pgx.BatchResults
	p      *pipeline
	closed bool
	err    error
}

func (r *batchRows) Next() bool             { return r.rows.Next() }
func (r *batchRows) Scan(dest ...any) error { return r.rows.Scan(dest...) }
func (r *batchRows) Err() error             { return r.rows.Err() }

func (r *batchRows) Close() error {
	if !r.closed {
		r.closed = true
		r.rows.Close()
		r.err = r.rows.Err()
		if err := r.br.Close(); r.err == nil {
			r.err = err
		}
		if r.err != nil {
			r.p.fail(r.err)
		}
	}
	return r.err
}
