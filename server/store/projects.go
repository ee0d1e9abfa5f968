package store

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/baton-ci/baton/server"
)

var _ server.ProjectStore = (*DB)(nil)

// SetProjectSettings replaces a project's scheduling settings.
func (s *DB) SetProjectSettings(ctx context.Context, project string, settings server.ProjectSettings) error {
	if err := settings.Validate(); err != nil {
		return err
	}
	return s.transaction(ctx, func(tx *gorm.DB) error {
		id, err := s.ensureProject(tx, project)
		if err != nil {
			return err
		}
		cred := credentialColumns(settings.RepoCredentials)
		if err := tx.Model(&projectRow{}).Where("id = ?", id).
			Updates(map[string]any{"max_running": settings.MaxRunning, "weight": settings.Weight,
				"repo_url": settings.RepoURL, "default_branch": settings.DefaultBranch, "notify_url": settings.NotifyURL,
				"repo_username": cred.Username, "repo_password_secret": cred.PasswordSecret,
				"repo_ssh_key_secret": cred.SSHKeySecret, "repo_known_hosts": cred.KnownHosts}).Error; err != nil {
			return fmt.Errorf("project %s settings: %w", project, err)
		}
		return nil
	})
}

// ProjectSettings returns a project's scheduling settings.
func (s *DB) ProjectSettings(ctx context.Context, project string) (server.ProjectSettings, error) {
	var p projectRow
	if err := s.db.WithContext(ctx).Where("name = ?", project).Take(&p).Error; err != nil {
		return server.ProjectSettings{}, notFound(err, "project %q not found", project)
	}
	settings := server.ProjectSettings{MaxRunning: p.MaxRunning, Weight: p.Weight, RepoURL: p.RepoURL, DefaultBranch: p.DefaultBranch, NotifyURL: p.NotifyURL}
	if p.RepoPasswordSecret != "" || p.RepoSSHKeySecret != "" {
		settings.RepoCredentials = &server.RepoCredentials{Username: p.RepoUsername, PasswordSecret: p.RepoPasswordSecret,
			SSHKeySecret: p.RepoSSHKeySecret, KnownHosts: p.RepoKnownHosts}
	}
	return settings, nil
}

// credentialColumns is what the credentials columns hold (empty for none).
func credentialColumns(c *server.RepoCredentials) server.RepoCredentials {
	if c == nil {
		return server.RepoCredentials{}
	}
	return *c
}

// CreateProject creates a project with its settings.
func (s *DB) CreateProject(ctx context.Context, project string, settings server.ProjectSettings) error {
	if err := settings.Validate(); err != nil {
		return err
	}
	row := projectRow{ID: uuid.Must(uuid.NewV7()).String(), Name: project, CreatedAt: s.now(), MaxRunning: settings.MaxRunning,
		Weight: settings.Weight, RepoURL: settings.RepoURL, DefaultBranch: settings.DefaultBranch, NotifyURL: settings.NotifyURL}
	cred := credentialColumns(settings.RepoCredentials)
	row.RepoUsername, row.RepoPasswordSecret, row.RepoSSHKeySecret, row.RepoKnownHosts = cred.Username, cred.PasswordSecret, cred.SSHKeySecret, cred.KnownHosts
	res := s.db.WithContext(ctx).Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "name"}}, DoNothing: true}).Create(&row)
	if res.Error != nil {
		return fmt.Errorf("create project %s: %w", project, res.Error)
	}
	if res.RowsAffected == 0 {
		return server.Errorf(server.ECONFLICT, "project %q exists", project)
	}
	return nil
}
