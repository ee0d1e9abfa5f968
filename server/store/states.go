package store

import "github.com/baton-ci/baton/shared/engine"

// stateIs is the condition that column (a step's state) is st, written as
// a literal: SQLite's planner uses the partial indexes over Ready and
// Running steps (migrations/sqlite/0019) only for a condition it can see
// matches them, which a bound parameter is not.
func stateIs(column string, st engine.StepState) string {
	return column + " = '" + string(st) + "'"
}

var (
	isReady   = stateIs("state", engine.StepReady)
	isRunning = stateIs("state", engine.StepRunning)
)
