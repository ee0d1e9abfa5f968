package server

import "context"

// ProjectSettings are a project's scheduling knobs.
type ProjectSettings struct {
	// MaxRunning is how many of its steps may run at once; 0: no limit.
	MaxRunning int
	// Weight is its share of the fleet against other projects: the
	// scheduler serves the project with the fewest running steps per
	// unit of weight. At least 1.
	Weight int
	// RepoURL is the project's repository, which webhooks read runbooks
	// from; DefaultBranch (default main) holds the trusted runbook and CI
	// code for pull requests from forks.
	RepoURL       string
	DefaultBranch string
	// RepoCredentials, for a private repository, name the project
	// secrets it is fetched with; nil: public.
	RepoCredentials *RepoCredentials
	// NotifyURL receives a signed POST for every run and step state change
	// (the project's notify secret signs it); "" sends none.
	NotifyURL string
}

// Limits on project settings.
const (
	MaxProjectRunning = 10_000
	MaxProjectWeight  = 1_000
)

// Validate names the first setting out of range.
func (p ProjectSettings) Validate() error {
	switch {
	case p.MaxRunning < 0 || p.MaxRunning > MaxProjectRunning:
		return Errorf(EINVALID, "max_running %d: use 0 (no limit) to %d", p.MaxRunning, MaxProjectRunning)
	case p.Weight < 1 || p.Weight > MaxProjectWeight:
		return Errorf(EINVALID, "weight %d: use 1 to %d", p.Weight, MaxProjectWeight)
	}
	return nil
}

// ProjectStore keeps projects' settings.
type ProjectStore interface {
	// SetProjectSettings replaces a project's settings, creating the
	// project on first use.
	SetProjectSettings(ctx context.Context, project string, settings ProjectSettings) error
	// CreateProject creates a project; ECONFLICT if it exists.
	CreateProject(ctx context.Context, project string, settings ProjectSettings) error
	// ProjectSettings returns a project's settings, or ENOTFOUND.
	ProjectSettings(ctx context.Context, project string) (ProjectSettings, error)
}

// RepoCredentials name the project secrets (never the values) a private
// repository is fetched with: HTTPS basic authentication with Username and
// the secret PasswordSecret (a token), or an SSH key in the secret
// SSHKeySecret with the host checked against KnownHosts (or the system's
// known_hosts files when empty).
type RepoCredentials struct {
	Username       string
	PasswordSecret string
	SSHKeySecret   string
	KnownHosts     string
}
