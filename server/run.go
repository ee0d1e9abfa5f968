package server

import (
	"context"
	"time"

	"github.com/baton-ci/baton/shared/engine"
)

// Project groups runs; it is created on first use.
type Project struct {
	ID        string
	Name      string
	CreatedAt time.Time
}

// Run is one execution of a runbook. Runbook keeps the exact text it ran.
type Run struct {
	ID         string
	Project    string
	Name       string
	State      engine.RunState
	Runbook    string
	CreatedAt  time.Time
	StartedAt  *time.Time
	FinishedAt *time.Time
	Steps      []*Step
}

// Step is one node of a run's DAG.
type Step struct {
	ID         string
	RunID      string
	Name       string
	Index      int
	Image      string
	Command    string
	Env        map[string]string
	DependsOn  []string
	State      engine.StepState
	ExitCode   *int
	Error      string
	AgentID    string
	Attempt    int
	StartedAt  *time.Time
	FinishedAt *time.Time
}

// StepResult is an agent's report that a step ended.
type StepResult struct {
	StepID   string
	AgentID  string
	Attempt  int
	ExitCode *int
	Error    string
}

// RunStore keeps runs and their steps.
type RunStore interface {
	// CreateRun stores a run with its steps and makes its entry steps Ready,
	// creating the project if needed.
	CreateRun(ctx context.Context, run *Run) error
	// FindRun returns a run with its steps, or ENOTFOUND.
	FindRun(ctx context.Context, id string) (*Run, error)
	// StepLog returns the stored output of a run's step, or ENOTFOUND.
	StepLog(ctx context.Context, runID, stepName string) ([]byte, error)
}

// Dispatcher hands Ready steps to agents and records what they report.
type Dispatcher interface {
	// ReserveStep atomically moves one Ready step to Running for agentID.
	// It returns nil, nil when no step is Ready.
	ReserveStep(ctx context.Context, agentID string) (*Step, *Run, error)
	// AppendLog stores a chunk of a running step's output at a byte offset;
	// a chunk already stored at that offset is ignored.
	AppendLog(ctx context.Context, stepID, agentID string, attempt int, offset int64, data []byte) error
	// CompleteStep records a result and advances the DAG in one transaction.
	// It reports how many steps became Ready.
	CompleteStep(ctx context.Context, res StepResult) (int, error)
}
