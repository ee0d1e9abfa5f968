package server

import (
	"context"
	"time"
)

// Role is what a user of the web UI may do.
type Role string

const (
	RoleAdmin  Role = "admin"  // may change anything
	RoleViewer Role = "viewer" // reads only
)

// Roles lists every role.
func Roles() []Role { return []Role{RoleAdmin, RoleViewer} }

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == RoleAdmin || r == RoleViewer }

// User is a person who logs in to the web UI. PasswordHash is a bcrypt hash.
type User struct {
	ID           string
	Name         string
	Role         Role
	PasswordHash []byte
	CreatedAt    time.Time
}

// Session is a logged-in browser. Only the SHA-256 hash of its cookie value
// is stored; CSRF is the token every state-changing request must carry.
type Session struct {
	Hash      []byte
	UserID    string
	CSRF      string
	CreatedAt time.Time
	ExpiresAt time.Time
	// User is filled by FindSession.
	User *User
}

// UserStore keeps web UI users and their sessions.
type UserStore interface {
	// CreateUser stores a user; ECONFLICT if the name is taken.
	CreateUser(ctx context.Context, u *User) error
	// FindUserByName returns a user or ENOTFOUND.
	FindUserByName(ctx context.Context, name string) (*User, error)
	// CountUsers says how many users exist (0: the UI needs its first admin).
	CountUsers(ctx context.Context) (int, error)
	// CreateFirstUser stores u only while no user exists; ECONFLICT otherwise.
	CreateFirstUser(ctx context.Context, u *User) error
	// CreateSession stores a session.
	CreateSession(ctx context.Context, s *Session) error
	// FindSession returns the unexpired session with this hash and its
	// user, or ENOTFOUND.
	FindSession(ctx context.Context, hash []byte, now time.Time) (*Session, error)
	// DeleteSession ends a session (logout); an unknown one is no error.
	DeleteSession(ctx context.Context, hash []byte) error
}

// RunFilter selects runs for a list; zero fields select everything.
type RunFilter struct {
	Project string
	State   string
	// Offset and Limit page through the runs, newest first.
	Offset, Limit int
}

// RunSummary is a run without its steps, for lists.
type RunSummary struct {
	ID, Project, Name, State, Trigger string
	CreatedAt                         time.Time
	StartedAt, FinishedAt             *time.Time
}

// RunLister lists runs.
type RunLister interface {
	// ListRuns returns the runs the filter selects, newest first, and
	// whether more follow.
	ListRuns(ctx context.Context, f RunFilter) ([]RunSummary, bool, error)
	// ProjectNames lists every project's name.
	ProjectNames(ctx context.Context) ([]string, error)
	// RunningByAgent returns every running step, by the agent holding it.
	RunningByAgent(ctx context.Context) (map[string][]*Step, error)
}
