package store

import (
	"context"
	"database/sql"
	"sync"

	"gorm.io/gorm"
)

// stmtCache keeps the statements the store runs prepared, so SQLite parses
// each SQL text once instead of on every call: parsing was a third of the
// server's CPU under dispatch load (docs/performance.md).
//
// gorm's own PrepareStmt does not help here. A statement it first meets in
// a transaction is prepared on that transaction, and database/sql then
// prepares it again in every later transaction (Tx.StmtContext re-prepares
// a statement that belongs to another transaction). This cache prepares on
// the *sql.DB, outside any transaction, and a transaction uses the
// statement through Tx.StmtContext, which reuses the driver statement
// already prepared on the transaction's connection.
//
// A text first seen outside a transaction is prepared then and there. One
// first seen inside a transaction runs unprepared and is prepared when the
// transaction has ended (the writer's one connection is busy until then).
// Texts beyond maxCachedStmts are never prepared: gorm writes a placeholder
// per element of an IN list, so some texts vary without end.
type stmtCache struct {
	db *sql.DB

	mu     sync.Mutex
	stmts  map[string]*sql.Stmt
	wanted map[string]bool
}

const maxCachedStmts = 512

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, stmts: map[string]*sql.Stmt{}, wanted: map[string]bool{}}
}

// use wraps g so that every statement goes through the cache.
func (c *stmtCache) use(g *gorm.DB) {
	g.ConnPool = c
	g.Statement.ConnPool = c
}

// get returns the prepared statement for query, or nil after noting that
// it is wanted.
func (c *stmtCache) get(query string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.stmts[query]; st != nil {
		return st
	}
	if len(c.stmts)+len(c.wanted) < maxCachedStmts {
		c.wanted[query] = true
	}
	return nil
}

// prepareWanted prepares the texts noted since the last call. It must be
// called with no transaction open in this goroutine.
func (c *stmtCache) prepareWanted(ctx context.Context) {
	c.mu.Lock()
	if len(c.wanted) == 0 {
		c.mu.Unlock()
		return
	}
	queries := make([]string, 0, len(c.wanted))
	for q := range c.wanted {
		queries = append(queries, q)
	}
	clear(c.wanted)
	c.mu.Unlock()
	for _, q := range queries {
		st, err := c.db.PrepareContext(ctx, q)
		if err != nil {
			continue // it runs unprepared, and reports its error there
		}
		c.mu.Lock()
		if c.stmts[q] == nil {
			c.stmts[q] = st
			st = nil
		}
		c.mu.Unlock()
		if st != nil {
			st.Close()
		}
	}
}

// Close closes the prepared statements.
func (c *stmtCache) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, st := range c.stmts {
		st.Close()
		delete(c.stmts, q)
	}
}

// GetDBConn lets gorm's DB() find the *sql.DB.
func (c *stmtCache) GetDBConn() (*sql.DB, error) { return c.db, nil }

func (c *stmtCache) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	return c.db.PrepareContext(ctx, query)
}

// prepared returns the statement for query, preparing it now if it is
// new and there is room; nil runs the query unprepared. Only for calls
// outside a transaction, which hold no connection while preparing.
func (c *stmtCache) prepared(ctx context.Context, query string) *sql.Stmt {
	if st := c.get(query); st != nil {
		return st
	}
	c.prepareWanted(ctx) // query, which get noted, and what transactions left
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stmts[query]
}

func (c *stmtCache) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := c.prepared(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return c.db.ExecContext(ctx, query, args...)
}

func (c *stmtCache) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := c.prepared(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return c.db.QueryContext(ctx, query, args...)
}

func (c *stmtCache) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := c.prepared(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return c.db.QueryRowContext(ctx, query, args...)
}

// BeginTx starts a transaction whose statements use the cache.
func (c *stmtCache) BeginTx(ctx context.Context, opts *sql.TxOptions) (gorm.ConnPool, error) {
	tx, err := c.db.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &cachedTx{Tx: tx, c: c}, nil
}

// cachedTx is a transaction that runs the cache's statements on its
// connection.
type cachedTx struct {
	*sql.Tx
	c *stmtCache
}

func (t *cachedTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.c.get(query); st != nil {
		return t.Tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return t.Tx.ExecContext(ctx, query, args...)
}

func (t *cachedTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.c.get(query); st != nil {
		return t.Tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return t.Tx.QueryContext(ctx, query, args...)
}

func (t *cachedTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := t.c.get(query); st != nil {
		return t.Tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return t.Tx.QueryRowContext(ctx, query, args...)
}

func (t *cachedTx) Commit() error {
	err := t.Tx.Commit()
	t.c.prepareWanted(context.Background())
	return err
}

func (t *cachedTx) Rollback() error {
	err := t.Tx.Rollback()
	t.c.prepareWanted(context.Background())
	return err
}
