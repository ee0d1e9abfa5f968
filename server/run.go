package server

import (
	"context"
	"time"

	"github.com/baton-ci/baton/shared/engine"
	"github.com/baton-ci/baton/shared/runbook"
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
	Params     map[string]any // resolved: every param of the runbook, typed
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
	Args       []string
	Env        map[string]string
	DependsOn  []string
	Timeout    time.Duration
	Retry      RetryPolicy
	If         string   // condition expression; "" means success()
	RunsOn     []string // labels an agent needs
	Priority   int
	Approval   *runbook.Approval
	Secrets    []string // names of project secrets given as env vars
	Assert     *runbook.Assert
	State      engine.StepState
	ExitCode   *int
	Reason     engine.Reason
	Error      string
	Outputs    map[string]string
	AgentID    string
	Attempt    int
	StartedAt  *time.Time
	FinishedAt *time.Time
	// Attempts is filled by FindRun: every try, oldest first.
	Attempts []Attempt
}

// RetryPolicy says when a failed attempt is tried again.
type RetryPolicy = runbook.Retry

// Attempt is one try of a step.
type Attempt struct {
	Attempt    int
	AgentID    string
	State      engine.StepState
	ExitCode   *int
	Reason     engine.Reason
	Error      string
	StartedAt  time.Time
	FinishedAt *time.Time
}

// StepResult is an agent's report that a step ended.
type StepResult struct {
	StepID   string
	AgentID  string
	Attempt  int
	ExitCode *int
	Reason   engine.Reason // empty: derived from ExitCode and Error
	Error    string
	Outputs  map[string]string
}

// RunStore keeps runs and their steps.
type RunStore interface {
	// CreateRun stores a run with its steps and makes its entry steps Ready,
	// creating the project if needed.
	CreateRun(ctx context.Context, run *Run) error
	// FindRun returns a run with its steps, or ENOTFOUND.
	FindRun(ctx context.Context, id string) (*Run, error)
	// DecideApproval approves a step awaiting approval (it becomes Ready) or
	// rejects it (it fails, reason rejected, and the DAG advances). It returns
	// how many steps became Ready; ECONFLICT unless the step awaits approval.
	DecideApproval(ctx context.Context, runID, stepName string, approve bool, by string) (int, error)
	// ResumeRun makes an ended run's failed, cancelled and skipped steps
	// pending again and decides them anew; succeeded steps keep their
	// results. ECONFLICT unless the run failed or was cancelled.
	ResumeRun(ctx context.Context, id string) (*Run, error)
	// StepLog returns the stored output of one attempt of a run's step (0:
	// the latest), or ENOTFOUND.
	StepLog(ctx context.Context, runID, stepName string, attempt int) ([]byte, error)
}

// Dispatcher hands Ready steps to agents and records what they report.
type Dispatcher interface {
	// ReserveStep atomically moves one Ready step to Running for agentID.
	// It returns nil, nil when no step is Ready. The run it returns carries
	// only its ID and Project.
	ReserveStep(ctx context.Context, agentID string) (*Step, *Run, error)
	// NextRetryAt returns when the earliest step waiting out a retry delay
	// becomes reservable, or the zero time when none waits.
	NextRetryAt(ctx context.Context) (time.Time, error)
	// AppendLog stores a chunk of a running step's output at a byte offset;
	// a chunk already stored at that offset is ignored.
	AppendLog(ctx context.Context, stepID, agentID string, attempt int, offset int64, data []byte) error
	// CompleteStep records a result and, in the same transaction, either
	// schedules a retry or advances the DAG. It reports how many steps
	// became Ready (a scheduled retry counts).
	CompleteStep(ctx context.Context, res StepResult) (int, error)
}
