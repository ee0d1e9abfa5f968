// Package engine is the pure state machine that moves the steps of a run
// through their states. It knows nothing of storage or transport: callers load
// the step states, ask Advance what changes, and persist the answer.
//
// Step states:
//
//	Pending ──deps succeeded──▶ Ready ──reserved──▶ Running ──exit 0──▶ Succeeded
//	   │                                               └──exit≠0/error──▶ Failed
//	   └──a dep failed, skipped or cancelled──▶ Skipped
//
// A run is pending until a step runs, running while any step is not terminal,
// and then failed (any step failed), cancelled (any step cancelled) or
// succeeded.
package engine

// StepState is the lifecycle state of one step. Values are lower case on the wire.
type StepState string

const (
	StepPending   StepState = "pending"
	StepReady     StepState = "ready"
	StepRunning   StepState = "running"
	StepSucceeded StepState = "succeeded"
	StepFailed    StepState = "failed"
	StepSkipped   StepState = "skipped"
	StepCancelled StepState = "cancelled"
)

// StepStates lists every step state in lifecycle order.
func StepStates() []StepState {
	return []StepState{StepPending, StepReady, StepRunning, StepSucceeded, StepFailed, StepSkipped, StepCancelled}
}

// Terminal reports whether no further transition can leave s.
func (s StepState) Terminal() bool {
	switch s {
	case StepSucceeded, StepFailed, StepSkipped, StepCancelled:
		return true
	}
	return false
}

// Valid reports whether s is one of StepStates.
func (s StepState) Valid() bool {
	for _, v := range StepStates() {
		if s == v {
			return true
		}
	}
	return false
}

// RunState is the state of a whole run, derived from its steps.
type RunState string

const (
	RunPending   RunState = "pending"
	RunWaiting   RunState = "waiting" // nothing can run until a person approves a step
	RunRunning   RunState = "running"
	RunSucceeded RunState = "succeeded"
	RunFailed    RunState = "failed"
	RunCancelled RunState = "cancelled"
)

// RunStates lists every run state.
func RunStates() []RunState {
	return []RunState{RunPending, RunWaiting, RunRunning, RunSucceeded, RunFailed, RunCancelled}
}

// Terminal reports whether the run has ended.
func (s RunState) Terminal() bool {
	return s == RunSucceeded || s == RunFailed || s == RunCancelled
}

// Reason classifies why a step attempt failed; retry policies choose which
// reasons to retry.
type Reason string

const (
	ReasonExitCode        Reason = "exit_code"        // the command exited non-zero
	ReasonAssert          Reason = "assert"           // the step's assert refused its exit code or output
	ReasonTimeout         Reason = "timeout"          // the step ran past its timeout
	ReasonAgentLost       Reason = "agent_lost"       // the agent stopped answering
	ReasonInfra           Reason = "infra"            // the step could not run: image missing, Docker down, ...
	ReasonCancelled       Reason = "cancelled"        // a person or the agent's shutdown stopped it
	ReasonPayloadRejected Reason = "payload_rejected" // the agent refused a payload that did not open or verify
)

// Reasons the server records that no agent reports: why a step was skipped,
// or failed without running.
const (
	ReasonUpstreamFailed   Reason = "upstream_failed"   // skipped: a step before it failed
	ReasonCondition        Reason = "condition"         // skipped: its if was false
	ReasonExpression       Reason = "expression"        // failed: its if or a ${{ }} value could not be evaluated
	ReasonAwaitingApproval Reason = "awaiting_approval" // pending: ready to run once a person approves
	ReasonRejected         Reason = "rejected"          // failed: a person refused its approval
	ReasonApproved         Reason = "approved"          // pending: approved, about to become ready
)

// Reasons lists the failure reasons an agent reports.
func Reasons() []Reason {
	return []Reason{ReasonExitCode, ReasonAssert, ReasonTimeout, ReasonAgentLost, ReasonInfra, ReasonCancelled, ReasonPayloadRejected}
}

// Valid reports whether r is one of Reasons.
func (r Reason) Valid() bool {
	for _, v := range Reasons() {
		if r == v {
			return true
		}
	}
	return false
}
