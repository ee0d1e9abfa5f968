package store_test

import (
	"path/filepath"
	"testing"

	"github.com/google/uuid"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/server/store"
)

// Statements are prepared once and reused: by the readers, which never
// open a transaction, as well as by the writer's transactions.
func TestStatementsArePrepared(t *testing.T) {
	t.Parallel()
	s, err := store.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "baton.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	run := &server.Run{Project: "p", Runbook: "r", Steps: []*server.Step{{Name: "a", Command: "true"}}}
	for range 2 {
		if err := s.CreateRun(ctx, run); err != nil {
			t.Fatal(err)
		}
		run.ID = ""
		if _, err := s.FindAgent(ctx, uuid.NewString()); server.ErrorCode(err) != server.ENOTFOUND {
			t.Fatalf("FindAgent of nobody: %v", err)
		}
	}
	writer, readers := store.CachedStatements(s)
	if writer < 3 || readers < 1 {
		t.Errorf("prepared statements: writer %d, readers %d; want the transactions' and the lookup's", writer, readers)
	}
	before := readers
	for range 3 {
		s.FindAgent(ctx, uuid.NewString())
	}
	if _, readers := store.CachedStatements(s); readers != before {
		t.Errorf("the same lookup prepared again: %d statements, then %d", before, readers)
	}
}
