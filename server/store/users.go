package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/baton-ci/baton/server"
)

type userRow struct {
	ID           string
	Name         string
	Role         string
	PasswordHash []byte
	CreatedAt    time.Time
}

func (userRow) TableName() string { return "users" }

func (r *userRow) domain() *server.User {
	return &server.User{ID: r.ID, Name: r.Name, Role: server.Role(r.Role), PasswordHash: r.PasswordHash, CreatedAt: r.CreatedAt.UTC()}
}

type sessionRow struct {
	Hash      []byte
	UserID    string
	CSRF      string `gorm:"column:csrf"`
	CreatedAt time.Time
	ExpiresAt time.Time
}

func (sessionRow) TableName() string { return "ui_sessions" }

var _ server.UserStore = (*DB)(nil)

// CreateUser stores a user; a taken name is ECONFLICT.
func (s *DB) CreateUser(ctx context.Context, u *server.User) error {
	return s.createUser(s.db.WithContext(ctx), u)
}

func (s *DB) createUser(tx *gorm.DB, u *server.User) error {
	if !u.Role.Valid() {
		return server.Errorf(server.EINVALID, "role %q: use admin or viewer", u.Role)
	}
	if u.ID == "" {
		u.ID = uuid.Must(uuid.NewV7()).String()
	}
	u.CreatedAt = s.now()
	row := userRow{ID: u.ID, Name: u.Name, Role: string(u.Role), PasswordHash: u.PasswordHash, CreatedAt: u.CreatedAt}
	res := tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "name"}}, DoNothing: true}).Create(&row)
	if res.Error != nil {
		return fmt.Errorf("create user %s: %w", u.Name, res.Error)
	}
	if res.RowsAffected == 0 {
		return server.Errorf(server.ECONFLICT, "user %q exists", u.Name)
	}
	return nil
}

// CreateFirstUser stores u only while there is no user at all.
func (s *DB) CreateFirstUser(ctx context.Context, u *server.User) error {
	return s.transaction(ctx, func(tx *gorm.DB) error {
		if s.d.locks {
			// Two setups at once: one wins.
			if err := tx.Exec(`LOCK TABLE users IN EXCLUSIVE MODE`).Error; err != nil {
				return fmt.Errorf("lock users: %w", err)
			}
		}
		var n int64
		if err := tx.Model(&userRow{}).Count(&n).Error; err != nil {
			return fmt.Errorf("count users: %w", err)
		}
		if n > 0 {
			return server.Errorf(server.ECONFLICT, "the first admin exists already; log in")
		}
		return s.createUser(tx, u)
	})
}

// FindUserByName returns a user or ENOTFOUND.
func (s *DB) FindUserByName(ctx context.Context, name string) (*server.User, error) {
	var row userRow
	if err := s.r.WithContext(ctx).Where("name = ?", name).Take(&row).Error; err != nil {
		return nil, notFound(err, "user %q not found", name)
	}
	return row.domain(), nil
}

// CountUsers says how many users exist.
func (s *DB) CountUsers(ctx context.Context) (int, error) {
	var n int64
	if err := s.r.WithContext(ctx).Model(&userRow{}).Count(&n).Error; err != nil {
		return 0, fmt.Errorf("count users: %w", err)
	}
	return int(n), nil
}

// CreateSession stores a session (its hash) and drops expired ones.
func (s *DB) CreateSession(ctx context.Context, sess *server.Session) error {
	sess.CreatedAt = s.now()
	row := sessionRow{Hash: sess.Hash, UserID: sess.UserID, CSRF: sess.CSRF, CreatedAt: sess.CreatedAt, ExpiresAt: sess.ExpiresAt.UTC()}
	db := s.db.WithContext(ctx)
	if err := db.Where("expires_at < ?", sess.CreatedAt).Delete(&sessionRow{}).Error; err != nil {
		return fmt.Errorf("drop expired sessions: %w", err)
	}
	if err := db.Create(&row).Error; err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	return nil
}

// FindSession returns an unexpired session with its user, or ENOTFOUND.
func (s *DB) FindSession(ctx context.Context, hash []byte, now time.Time) (*server.Session, error) {
	db := s.r.WithContext(ctx)
	var row sessionRow
	if err := db.Where("hash = ? AND expires_at > ?", hash, now.UTC()).Take(&row).Error; err != nil {
		return nil, notFound(err, "no such session")
	}
	var u userRow
	if err := db.Where("id = ?", row.UserID).Take(&u).Error; err != nil {
		return nil, notFound(err, "no such session")
	}
	return &server.Session{Hash: row.Hash, UserID: row.UserID, CSRF: row.CSRF, CreatedAt: row.CreatedAt.UTC(),
		ExpiresAt: row.ExpiresAt.UTC(), User: u.domain()}, nil
}

// DeleteSession ends a session.
func (s *DB) DeleteSession(ctx context.Context, hash []byte) error {
	if err := s.db.WithContext(ctx).Where("hash = ?", hash).Delete(&sessionRow{}).Error; err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}
