package store_test

import (
	"strings"
	"testing"

	"github.com/baton-ci/baton/server/store"
)

// PostgreSQL keeps one plan per statement of a connection, made from what
// the tables held when it was planned: the hot path's statements must
// reach a completion's few rows by index even when planned on empty
// tables, as a server that starts on a fresh database does.
func TestGenericPlansReachFewRows(t *testing.T) {
	s := postgresDB(t).Open(t)
	plans, err := store.GenericPlans(s)
	if err != nil {
		t.Fatal(err)
	}
	dep := plans["dependents"]
	if !strings.Contains(dep, "step_deps_pkey") || strings.Contains(dep, "steps_run_state") || strings.Contains(dep, "Seq Scan on steps") {
		t.Errorf("dependents: want step_deps by its key, then steps by id:\n%s", dep)
	}
	dep = plans["dependents of step"]
	if !strings.Contains(dep, "step_deps_pkey") || !strings.Contains(dep, "steps_pkey") || strings.Contains(dep, "steps_run_state") || strings.Contains(dep, "Seq Scan") {
		t.Errorf("dependents of a step: want the step by id, step_deps by its key, then steps by id:\n%s", dep)
	}
	succ := plans["successor"]
	if strings.Contains(succ, "Bitmap") || strings.Contains(succ, "Anti Join") || strings.Contains(succ, "Seq Scan on steps") {
		t.Errorf("successor: want each probe an index scan with a condition:\n%s", succ)
	}
}

// A PostgreSQL store opens a few connections per CPU unless told how
// many.
func TestPostgresConnections(t *testing.T) {
	db := postgresDB(t)
	if got, want := store.MaxOpenConns(db.OpenWith(t, 0)), store.DefaultPostgresConns(); got != want {
		t.Errorf("by default %d connections, want %d", got, want)
	}
	if got := store.MaxOpenConns(db.OpenWith(t, 3)); got != 3 {
		t.Errorf("told 3: %d connections", got)
	}
}
