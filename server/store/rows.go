package store

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/shared/engine"
)

// Row types mirror the tables; they never leave this package.

type projectRow struct {
	ID            string
	Name          string
	CreatedAt     time.Time
	MaxRunning    int
	Weight        int
	Served        int64
	RepoURL       string
	DefaultBranch string
	NotifyURL     string
	// A private repository's credentials: secret names, not values.
	RepoUsername       string
	RepoPasswordSecret string
	RepoSSHKeySecret   string `gorm:"column:repo_ssh_key_secret"`
	RepoKnownHosts     string
}

func (projectRow) TableName() string { return "projects" }

type runRow struct {
	ID         string
	ProjectID  string
	Name       string
	Params     string
	State      string
	Runbook    string
	CreatedAt  time.Time
	StartedAt  *time.Time
	FinishedAt *time.Time
	// CancelRequested: someone cancelled the run.
	CancelRequested bool
	// Source and CiSource are JSON of server.Source, or "".
	Source         string
	CiSource       string
	Trigger        string
	RetryOf        string
	IdempotencyKey *string
	Files          string
	Error          string
	CausedBy       string
	Depth          int
	Untrusted      bool
}

func (runRow) TableName() string { return "runs" }

type stepRow struct {
	ID          string
	RunID       string
	Name        string
	Idx         int
	Image       string
	Command     string
	Args        string
	Env         string
	DependsOn   string
	TimeoutMs   int64
	Retry       string
	IfCond      string
	Assert      string
	RunsOn      string
	Priority    int
	Approval    string
	Secrets     string
	Environment string
	Memory      int64
	NanoCpus    int64
	State       string
	ExitCode    *int
	Reason      string
	Error       string
	Outputs     string
	AgentID     string
	Attempt     int
	NotBefore   int64
	ReadyAt     int64 // Unix ms; 0: never ready, or not recorded
	StartedAt   *time.Time
	FinishedAt  *time.Time
	// LeaseID fences the holder's calls; LeaseExpires and Deadline are Unix ms.
	LeaseID         string
	LeaseExpires    int64
	Deadline        int64
	CancelRequested bool
	ProjectID       string
}

func (stepRow) TableName() string { return "steps" }

type attemptRow struct {
	StepID     string
	Attempt    int
	RunID      string
	AgentID    string
	State      string
	ExitCode   *int
	Reason     string
	Error      string
	Reported   string
	LeaseID    string
	StartedAt  time.Time
	FinishedAt *time.Time
}

func (attemptRow) TableName() string { return "step_attempts" }

func (r *attemptRow) domain() server.Attempt {
	return server.Attempt{
		Attempt: r.Attempt, AgentID: r.AgentID, State: engine.StepState(r.State), ExitCode: r.ExitCode,
		Reason: engine.Reason(r.Reason), Error: r.Error, StartedAt: r.StartedAt.UTC(), FinishedAt: utcPtr(r.FinishedAt),
	}
}

type stepDepRow struct {
	RunID     string
	DependsOn string
	StepID    string
}

func (stepDepRow) TableName() string { return "step_deps" }

type stepLogRow struct {
	StepID     string
	Attempt    int
	ByteOffset int64
	Data       []byte
	Times      string
}

func (stepLogRow) TableName() string { return "step_logs" }

type agentRow struct {
	ID         string
	Name       string
	Version    string
	Labels     string
	State      string
	SigningKey []byte
	HPKEKey    []byte `gorm:"column:hpke_key"`
	CreatedAt  time.Time
	LastSeen   time.Time
	Config     string // JSON of server.AgentSettings
}

func (agentRow) TableName() string { return "agents" }

type registrationTokenRow struct {
	ID          string
	Hash        []byte
	Description string
	CreatedAt   time.Time
	ExpiresAt   *time.Time
	MaxUses     int
	Uses        int
	RevokedAt   *time.Time
}

func (r *registrationTokenRow) domain() *server.RegistrationToken {
	return &server.RegistrationToken{ID: r.ID, Hash: r.Hash, Description: r.Description, CreatedAt: r.CreatedAt.UTC(),
		ExpiresAt: utcPtr(r.ExpiresAt), MaxUses: r.MaxUses, Uses: r.Uses, RevokedAt: utcPtr(r.RevokedAt)}
}

func (registrationTokenRow) TableName() string { return "registration_tokens" }

func (r *stepRow) domain() (*server.Step, error) {
	s := &server.Step{
		ID: r.ID, RunID: r.RunID, Name: r.Name, Index: r.Idx, Image: r.Image, Command: r.Command,
		Timeout: time.Duration(r.TimeoutMs) * time.Millisecond, If: r.IfCond, Priority: r.Priority, State: engine.StepState(r.State),
		ExitCode: r.ExitCode, Reason: engine.Reason(r.Reason), Error: r.Error, AgentID: r.AgentID,
		Attempt: r.Attempt, StartedAt: utcPtr(r.StartedAt), FinishedAt: utcPtr(r.FinishedAt),
		LeaseID: r.LeaseID, CancelRequested: r.CancelRequested, Environment: r.Environment,
		Memory: r.Memory, NanoCPUs: r.NanoCpus,
	}
	if r.LeaseExpires > 0 {
		s.LeaseExpires = time.UnixMilli(r.LeaseExpires).UTC()
	}
	if r.ReadyAt > 0 {
		s.ReadyAt = time.UnixMilli(r.ReadyAt).UTC()
	}
	for _, f := range []struct {
		text string
		into any
	}{{r.Env, &s.Env}, {r.DependsOn, &s.DependsOn}, {r.Args, &s.Args}, {r.Retry, &s.Retry}, {r.Outputs, &s.Outputs}, {r.Assert, &s.Assert}, {r.RunsOn, &s.RunsOn}, {r.Approval, &s.Approval}, {r.Secrets, &s.Secrets}} {
		if err := json.Unmarshal([]byte(f.text), f.into); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func stepRowOf(s *server.Step) (*stepRow, error) {
	env, err := json.Marshal(s.Env)
	if err != nil {
		return nil, err
	}
	deps := s.DependsOn
	if deps == nil {
		deps = []string{}
	}
	dependsOn, err := json.Marshal(deps)
	if err != nil {
		return nil, err
	}
	args := s.Args
	if args == nil {
		args = []string{}
	}
	argsJSON, err := json.Marshal(args)
	if err != nil {
		return nil, err
	}
	retry, err := json.Marshal(s.Retry)
	if err != nil {
		return nil, err
	}
	assert, err := json.Marshal(s.Assert)
	if err != nil {
		return nil, err
	}
	runsOn, err := json.Marshal(nonNil(s.RunsOn))
	if err != nil {
		return nil, err
	}
	approval, err := json.Marshal(s.Approval)
	if err != nil {
		return nil, err
	}
	secrets, err := json.Marshal(nonNil(s.Secrets))
	if err != nil {
		return nil, err
	}
	outputs := s.Outputs
	if outputs == nil {
		outputs = map[string]string{}
	}
	outputsJSON, err := json.Marshal(outputs)
	if err != nil {
		return nil, err
	}
	return &stepRow{
		ID: s.ID, RunID: s.RunID, Name: s.Name, Idx: s.Index, Image: s.Image, Command: s.Command,
		Args: string(argsJSON), Env: string(env), DependsOn: string(dependsOn), TimeoutMs: s.Timeout.Milliseconds(),
		Retry: string(retry), IfCond: s.If, Assert: string(assert), RunsOn: string(runsOn), Priority: s.Priority,
		Approval: string(approval), Secrets: string(secrets), Environment: s.Environment, Memory: s.Memory, NanoCpus: s.NanoCPUs, State: string(s.State), ExitCode: s.ExitCode, Reason: string(s.Reason), Outputs: string(outputsJSON),
		Error: s.Error, AgentID: s.AgentID, Attempt: s.Attempt, StartedAt: s.StartedAt, FinishedAt: s.FinishedAt,
	}, nil
}

func (r *runRow) domain(project string) (*server.Run, error) {
	run := &server.Run{
		ID: r.ID, Project: project, Name: r.Name, State: engine.RunState(r.State), Runbook: r.Runbook,
		CreatedAt: r.CreatedAt.UTC(), StartedAt: utcPtr(r.StartedAt), FinishedAt: utcPtr(r.FinishedAt),
		CancelRequested: r.CancelRequested, Trigger: r.Trigger, RetryOf: r.RetryOf, Error: r.Error,
		CausedBy: r.CausedBy, Depth: r.Depth, Untrusted: r.Untrusted,
	}
	if r.IdempotencyKey != nil {
		run.IdempotencyKey = *r.IdempotencyKey
	}
	if r.Files != "" && r.Files != "{}" {
		if err := json.Unmarshal([]byte(r.Files), &run.Files); err != nil {
			return nil, fmt.Errorf("files of run %s: %w", r.ID, err)
		}
	}
	if err := json.Unmarshal([]byte(r.Params), &run.Params); err != nil {
		return nil, fmt.Errorf("params of run %s: %w", r.ID, err)
	}
	var err error
	if run.Source, err = sourceOf(r.Source); err != nil {
		return nil, fmt.Errorf("source of run %s: %w", r.ID, err)
	}
	if run.CISource, err = sourceOf(r.CiSource); err != nil {
		return nil, fmt.Errorf("ci source of run %s: %w", r.ID, err)
	}
	return run, nil
}

func (r *agentRow) domain() *server.Agent {
	a := &server.Agent{
		ID: r.ID, Name: r.Name, Version: r.Version, State: server.AgentState(r.State),
		SigningKey: r.SigningKey, HPKEKey: r.HPKEKey, CreatedAt: r.CreatedAt.UTC(), LastSeen: r.LastSeen.UTC(),
	}
	json.Unmarshal([]byte(r.Labels), &a.Labels)   // written by this package from a []string
	json.Unmarshal([]byte(r.Config), &a.Settings) // written by this package from AgentSettings
	return a
}

// nonNil returns s, or an empty list for nil, so JSON columns hold [].
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// sourceOf reads a source column ("" is none).
func sourceOf(text string) (*server.Source, error) {
	if text == "" {
		return nil, nil
	}
	var src server.Source
	if err := json.Unmarshal([]byte(text), &src); err != nil {
		return nil, err
	}
	return &src, nil
}

// sourceText writes a source column.
func sourceText(src *server.Source) (string, error) {
	if src == nil {
		return "", nil
	}
	b, err := json.Marshal(src)
	return string(b), err
}
