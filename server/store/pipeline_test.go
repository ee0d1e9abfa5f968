package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/baton-ci/baton/server/store"
)

// A transaction's writes may wait to be sent with its next statement (on
// PostgreSQL, a pipeline): each statement still sees the writes before it,
// in order, whether it is the hot path's or gorm's, and the commit sends
// what still waits.
func TestTransactionWritesAreSeenInOrder(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		ctx := t.Context()
		scratchTable(t, s)
		err := store.Transaction(ctx, s, func(o store.TxOps) error {
			if err := o.Write("first", `INSERT INTO scratch (id, v) VALUES (?, ?)`, 1, 10); err != nil {
				return err
			}
			if err := o.Write("second", `UPDATE scratch SET v = v + ? WHERE id = ?`, 5, 1); err != nil {
				return err
			}
			if v, err := o.QueryInt(`SELECT v FROM scratch WHERE id = ?`, 1); err != nil || v != 15 {
				t.Errorf("the query after two writes read %d, %v; want 15", v, err)
			}
			if err := o.Write("third", `INSERT INTO scratch (id, v) VALUES (?, ?)`, 2, 20); err != nil {
				return err
			}
			if n, err := o.GormCount("scratch"); err != nil || n != 2 {
				t.Errorf("gorm counted %d rows, %v; want 2", n, err)
			}
			// Waits for the commit.
			return o.Write("fourth", `INSERT INTO scratch (id, v) VALUES (?, ?)`, 3, 30)
		})
		if err != nil {
			t.Fatal(err)
		}
		if n, err := store.CountRows(s, "scratch", "1 = 1"); err != nil || n != 3 {
			t.Fatalf("%d rows committed, %v; want 3", n, err)
		}
	})
}

// A write that fails is reported by the statement it was sent with, or by
// the commit, naming what it did; nothing of the transaction stays, and
// the connection is left fit for the next one.
func TestTransactionWriteFailureRollsBack(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		ctx := t.Context()
		store.SetMaxOpenConns(s, 1) // the next transaction gets the same connection
		scratchTable(t, s)
		if err := store.ExecSQL(s, `INSERT INTO scratch (id, v) VALUES (1, 1)`); err != nil {
			t.Fatal(err)
		}
		for _, at := range []string{"query", "commit"} {
			err := store.Transaction(ctx, s, func(o store.TxOps) error {
				if err := o.Write("insert row 2", `INSERT INTO scratch (id, v) VALUES (?, ?)`, 2, 2); err != nil {
					return err
				}
				if err := o.Write("insert a second row 1", `INSERT INTO scratch (id, v) VALUES (?, ?)`, 1, 3); err != nil {
					return err
				}
				if at == "query" {
					_, err := o.QueryInt(`SELECT COUNT(*) FROM scratch`)
					return err
				}
				return nil
			})
			if err == nil || !strings.Contains(err.Error(), "insert a second row 1") {
				t.Fatalf("failure at the %s: err = %v, want the duplicate insert named", at, err)
			}
			if n, err := store.CountRows(s, "scratch", "1 = 1"); err != nil || n != 1 {
				t.Fatalf("failure at the %s: %d rows, %v; want 1 (row 2 rolled back)", at, n, err)
			}
		}
		err := store.Transaction(ctx, s, func(o store.TxOps) error {
			return o.Write("insert row 2", `INSERT INTO scratch (id, v) VALUES (?, ?)`, 2, 2)
		})
		if n, cerr := store.CountRows(s, "scratch", "1 = 1"); err != nil || cerr != nil || n != 2 {
			t.Fatalf("the next transaction: %v; %d rows, %v; want 2", err, n, cerr)
		}
	})
}

// A write that fails inside a savepoint is undone with it; the rest of
// the transaction commits.
func TestTransactionSavepointUndoesAFailedWrite(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		ctx := t.Context()
		scratchTable(t, s)
		err := store.Transaction(ctx, s, func(o store.TxOps) error {
			if err := o.Write("row 1", `INSERT INTO scratch (id, v) VALUES (?, ?)`, 1, 1); err != nil {
				return err
			}
			serr := o.Savepoint("sp", func() error {
				if err := o.Write("row 1 again", `INSERT INTO scratch (id, v) VALUES (?, ?)`, 1, 2); err != nil {
					return err
				}
				_, err := o.QueryInt(`SELECT COUNT(*) FROM scratch`)
				return err
			})
			if serr == nil {
				t.Error("the duplicate insert in the savepoint did not fail")
			}
			return o.Write("row 2", `INSERT INTO scratch (id, v) VALUES (?, ?)`, 2, 2)
		})
		if err != nil {
			t.Fatal(err)
		}
		if n, err := store.CountRows(s, "scratch", "1 = 1"); err != nil || n != 2 {
			t.Fatalf("%d rows, %v; want 2", n, err)
		}
	})
}

// A transaction that panics is rolled back, and the panic is its error.
func TestTransactionPanicRollsBack(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		store.SetMaxOpenConns(s, 1)
		scratchTable(t, s)
		err := store.Transaction(t.Context(), s, func(o store.TxOps) error {
			if err := o.Write("row 1", `INSERT INTO scratch (id, v) VALUES (?, ?)`, 1, 1); err != nil {
				return err
			}
			if _, err := o.QueryInt(`SELECT COUNT(*) FROM scratch`); err != nil {
				return err
			}
			panic("boom")
		})
		if err == nil || !strings.Contains(err.Error(), "boom") {
			t.Errorf("err = %v, want the panic", err)
		}
		err = store.Transaction(context.Background(), s, func(o store.TxOps) error {
			return o.Write("row 2", `INSERT INTO scratch (id, v) VALUES (?, ?)`, 2, 2)
		})
		if n, cerr := store.CountRows(s, "scratch", "1 = 1"); err != nil || cerr != nil || n != 1 {
			t.Fatalf("after the panic: %v; %d rows, %v; want only row 2", err, n, cerr)
		}
	})
}

func scratchTable(t *testing.T, s *store.DB) {
	t.Helper()
	if err := store.ExecSQL(s, `CREATE TABLE scratch (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)`); err != nil {
		t.Fatal(errors.Join(errors.New("create scratch table"), err))
	}
}

// A transaction whose context ends midway (the agent hung up) is rolled
// back, and the connection it held is fit for the next one, or dropped.
func TestTransactionCancelledMidwayLeavesNothing(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		store.SetMaxOpenConns(s, 1)
		scratchTable(t, s)
		ctx, cancel := context.WithCancel(t.Context())
		err := store.Transaction(ctx, s, func(o store.TxOps) error {
			if err := o.Write("row 1", `INSERT INTO scratch (id, v) VALUES (?, ?)`, 1, 1); err != nil {
				return err
			}
			if _, err := o.QueryInt(`SELECT COUNT(*) FROM scratch`); err != nil {
				return err
			}
			cancel()
			if err := o.Write("row 2", `INSERT INTO scratch (id, v) VALUES (?, ?)`, 2, 2); err != nil {
				return err
			}
			_, err := o.QueryInt(`SELECT COUNT(*) FROM scratch`)
			return err
		})
		if err == nil {
			// SQLite's group commit runs without the caller's
			// cancellation: the transaction may complete.
			if store.Dialect(s) != "sqlite" {
				t.Fatal("the cancelled transaction succeeded")
			}
		}
		want := int64(0)
		if err == nil {
			want = 2
		}
		err = store.Transaction(context.Background(), s, func(o store.TxOps) error {
			return o.Write("row 3", `INSERT INTO scratch (id, v) VALUES (?, ?)`, 3, 3)
		})
		if n, cerr := store.CountRows(s, "scratch", "id < 3"); err != nil || cerr != nil || n != want {
			t.Fatalf("after the cancel: %v; %d rows of the cancelled transaction, %v; want %d", err, n, cerr, want)
		}
	})
}

// A query may wait to be sent with what comes after it, as a write does:
// it reads what the statements before it wrote and not what comes after,
// and its rows come when it is sent (at once where nothing is pipelined).
// One that fails is named, and the transaction rolls back.
func TestTransactionReadsLaterInOrder(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		ctx := t.Context()
		scratchTable(t, s)
		var before, after int64
		var gotBefore, gotAfter bool
		err := store.Transaction(ctx, s, func(o store.TxOps) error {
			if err := o.Write("first", `INSERT INTO scratch (id, v) VALUES (?, ?)`, 1, 10); err != nil {
				return err
			}
			if err := o.ReadIntLater("read v", `SELECT v FROM scratch WHERE id = ?`, &before, &gotBefore, 1); err != nil {
				return err
			}
			if err := o.Write("second", `UPDATE scratch SET v = v + ? WHERE id = ?`, 5, 1); err != nil {
				return err
			}
			if err := o.Flush(); err != nil {
				return err
			}
			if !gotBefore || before != 10 {
				t.Errorf("the read before the update: %d (answered %v), want 10", before, gotBefore)
			}
			// Answered with the commit.
			return o.ReadIntLater("read v again", `SELECT v FROM scratch WHERE id = ?`, &after, &gotAfter, 1)
		})
		if err != nil {
			t.Fatal(err)
		}
		if !gotAfter || after != 15 {
			t.Errorf("the read that went with the commit: %d (answered %v), want 15", after, gotAfter)
		}

		err = store.Transaction(ctx, s, func(o store.TxOps) error {
			if err := o.Write("insert row 2", `INSERT INTO scratch (id, v) VALUES (?, ?)`, 2, 2); err != nil {
				return err
			}
			var n int64
			var got bool
			return o.ReadIntLater("read from nowhere", `SELECT v FROM no_such_table WHERE id = ?`, &n, &got, 1)
		})
		if err == nil || !strings.Contains(err.Error(), "read from nowhere") {
			t.Fatalf("err = %v, want the failed read named", err)
		}
		if n, err := store.CountRows(s, "scratch", "1 = 1"); err != nil || n != 1 {
			t.Fatalf("%d rows, %v; want 1 (row 2 rolled back)", n, err)
		}
	})
}
