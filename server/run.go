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
	// CancelRequested: someone cancelled the run (see RunStore.CancelRun).
	CancelRequested bool
	// Source is the code the run builds (possibly untrusted); CISource is
	// trusted CI code. Either may be nil.
	Source, CISource *Source
	// Trigger says how the run started: api (default), retry, webhook or
	// schedule. RetryOf is the run a retry repeats.
	Trigger, RetryOf string
	// Files are the repository files the runbook included, kept so the
	// run can be retried.
	Files map[string]string
	// Untrusted: the run builds code from a fork; its steps get no secrets
	// and run only on agents labelled untrusted, as do its retries and the
	// runs it triggers.
	Untrusted bool
	// CausedBy is the step (run id/step name) whose cacher trigger started
	// the run; Depth counts such steps back to a run started otherwise.
	CausedBy string
	Depth    int
	// Error says why the run failed before any step ran (an invalid
	// runbook from a push); such a run has no steps.
	Error string
	// IdempotencyKey, when set, starts at most one run per project: a
	// second CreateRun with it returns ErrRunExists with the first run's ID.
	IdempotencyKey string
	Steps          []*Step
}

// Source is where code comes from: git (URL, Ref, Commit), copy (Path on
// the agent's host), tarball (URL or Path).
type Source struct {
	Type   string `json:"type"`
	URL    string `json:"url,omitempty"`
	Ref    string `json:"ref,omitempty"`
	Commit string `json:"commit,omitempty"`
	Path   string `json:"path,omitempty"`
}

// Step is one node of a run's DAG.
type Step struct {
	ID        string
	RunID     string
	Name      string
	Index     int
	Image     string
	Command   string
	Args      []string
	Env       map[string]string
	DependsOn []string
	Timeout   time.Duration
	Retry     RetryPolicy
	If        string   // condition expression; "" means success()
	RunsOn    []string // labels an agent needs
	Priority  int
	Approval  *runbook.Approval
	Secrets   []string // names of project secrets given as env vars
	// Environment scopes Secrets: one set for this environment wins.
	Environment string
	// Memory (bytes) and NanoCPUs limit the step; 0: the agent's default.
	Memory, NanoCPUs int64
	Assert           *runbook.Assert
	State            engine.StepState
	ExitCode         *int
	Reason           engine.Reason
	Error            string
	Outputs          map[string]string
	AgentID          string
	Attempt          int
	StartedAt        *time.Time
	FinishedAt       *time.Time
	// ReadyAt is when the step last became ready (past a retry delay: when
	// the delay ended); zero when not known.
	ReadyAt time.Time
	// LeaseID fences the holder's calls while the step runs; the lease
	// lapses at LeaseExpires unless the agent renews it.
	LeaseID      string
	LeaseExpires time.Time
	// CancelRequested: the run was cancelled while the step ran.
	CancelRequested bool
	// Waiting says why a pending or ready step has not started (FindRun).
	Waiting string
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
	// LeaseID is the lease the agent holds the step under.
	LeaseID string
	// Log, if set, is the last chunk of the attempt's output, stored in
	// the same transaction before the result is judged (an assert on the
	// output sees it).
	Log *LogAppend
}

// Completion is what CompleteAndReserve did: the result is recorded.
type Completion struct {
	// Ready is how many steps became Ready.
	Ready int
	// Next and NextRun are the agent's next step, nil when there was none
	// or NextErr says why it could not be reserved.
	Next    *Step
	NextRun *Run
	NextErr error
}

// LogAppend is a chunk of a step's output at a byte offset, with its line
// times (protocol.FormatLineTimes) and the redactor that masks it.
type LogAppend struct {
	Offset int64
	Data   []byte
	Times  string
	Redact Redactor
}

// LogChunkTimes is a stored log chunk's start and its line times as the
// agent encoded them (protocol.FormatLineTimes, offsets within the chunk).
type LogChunkTimes struct {
	Offset int64
	Times  string
}

// Redactor overwrites secrets in place with bytes of the same length, so
// stored log offsets do not move; Longest is the longest form it hides.
type Redactor interface {
	Redact(b []byte)
	Longest() int
}

// Lease names the holder of a running step: the agent, the attempt and the
// lease id the reservation issued. Every call an agent makes about a step
// carries it; a stale one is ECONFLICT.
type Lease struct {
	StepID  string
	AgentID string
	Attempt int
	ID      string
}

// Renewal answers a lease renewal.
type Renewal struct {
	// Expires is when the lease lapses unless renewed again.
	Expires time.Time
	// Cancel tells the holder to stop the step: its run was cancelled.
	Cancel bool
}

// Expiry counts what ExpireSteps did.
type Expiry struct {
	// Lost steps' agents stopped renewing their leases; TimedOut steps ran
	// past their deadline on the server's clock.
	Lost, TimedOut int
	// Ready is how many steps became Ready (retries and dependents).
	Ready int
	// Ended lists the steps it ended, for the log.
	Ended []EndedStep
}

// EndedStep is a step the server ended on its own (lease or deadline).
type EndedStep struct {
	RunID, StepID, Step, AgentID string
	Attempt                      int
	Reason                       engine.Reason
}

// ErrRunExists is returned by CreateRun when the run's idempotency key
// already started a run; the run's ID is then that run's.
var ErrRunExists = Errorf(ECONFLICT, "a run was already started with this idempotency key")

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
	// The decision (by whom, with what comment) goes to the audit trail.
	DecideApproval(ctx context.Context, runID, stepName string, approve bool, by, comment string) (int, error)
	// ResumeRun makes an ended run's failed, cancelled and skipped steps
	// pending again and decides them anew; succeeded steps keep their
	// results. ECONFLICT unless the run failed or was cancelled.
	ResumeRun(ctx context.Context, id string) (*Run, error)
	// StepLog returns the stored output of one attempt of a run's step (0:
	// the latest), or ENOTFOUND.
	StepLog(ctx context.Context, runID, stepName string, attempt int) ([]byte, error)
	// StepLogTimes is StepLog with, for each chunk, the line times the
	// agent sent: offsets are from the start of the log.
	StepLogTimes(ctx context.Context, runID, stepName string, attempt int) ([]byte, []LogChunkTimes, error)
	// CancelRun cancels a run: steps that have not started are cancelled
	// (cleanup steps and those whose if asks cancelled() or always() still
	// run), running steps are marked so their holders stop them. It returns
	// the agents holding running steps, to be told; ECONFLICT if the run
	// has ended.
	CancelRun(ctx context.Context, id string) (agents []string, err error)
	// TrustRun lifts an untrusted run's restrictions from the steps that
	// have not started: they get the secrets and labels of the runbook
	// (given by step name). ECONFLICT unless the run is untrusted and open.
	TrustRun(ctx context.Context, id string, steps map[string]StepGrant) error
}

// StepGrant is what trusting a run gives one step back.
type StepGrant struct {
	Secrets []string
	RunsOn  []string
}

// Dispatcher hands Ready steps to agents and records what they report.
type Dispatcher interface {
	// ReserveStep atomically moves one Ready step to Running for agentID,
	// under a new lease that lapses after lease unless renewed. It returns
	// nil, nil when no step is Ready. The run it returns carries only its
	// ID, Project, Source, CISource and Untrusted.
	ReserveStep(ctx context.Context, agentID string, lease time.Duration) (*Step, *Run, error)
	// ReserveStepAs is ReserveStep with the new lease's id chosen by the
	// caller (see LeasedStep).
	ReserveStepAs(ctx context.Context, agentID, leaseID string, lease time.Duration) (*Step, *Run, error)
	// CompleteAndReserve is CompleteStep, then ReserveStepAs for the
	// reporting agent under leaseID. A repeated report (its first answer
	// was lost) gets the step first reserved under leaseID again, if it
	// still runs for the agent.
	// The error is the completion's; one reserving is in the Completion.
	CompleteAndReserve(ctx context.Context, res StepResult, leaseID string, lease time.Duration) (Completion, error)
	// RenewLease extends a held lease by d; ECONFLICT when it is not the
	// step's current lease (expired and re-queued, or ended).
	RenewLease(ctx context.Context, l Lease, d time.Duration) (Renewal, error)
	// ExpireSteps ends the running steps whose lease lapsed (agent_lost) or
	// whose deadline passed (timeout), as their retry policies say.
	ExpireSteps(ctx context.Context) (Expiry, error)
	// NextRetryAt returns when the earliest step waiting out a retry delay
	// becomes reservable, or the zero time when none waits.
	NextRetryAt(ctx context.Context) (time.Time, error)
	// DueSteps counts the Ready steps some agent could take now (their
	// retry delay over), up to limit.
	DueSteps(ctx context.Context, limit int) (int, error)
	// AppendLog stores a chunk of a running step's output at a byte offset;
	// a chunk already stored at that offset is ignored.
	// A non-nil redact masks secrets in the chunk (and across its boundary
	// with the chunk before) before it is stored.
	// times is the chunk's line times as the agent encoded them (stored as is).
	AppendLog(ctx context.Context, l Lease, offset int64, data []byte, times string, redact Redactor) error
	// HeldStep returns the step a lease holds, or ECONFLICT/ENOTFOUND.
	HeldStep(ctx context.Context, l Lease) (*Step, error)
	// StepSecrets returns the project, environment and secret names of a
	// step held under the lease.
	StepSecrets(ctx context.Context, l Lease) (project, env string, names []string, err error)
	// CompleteStep records a result and, in the same transaction, either
	// schedules a retry or advances the DAG. It reports how many steps
	// became Ready (a scheduled retry counts).
	CompleteStep(ctx context.Context, res StepResult) (int, error)
}
