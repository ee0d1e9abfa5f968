package store

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/baton-ci/baton/server"
)

var _ server.SecretStore = (*DB)(nil)

type secretRow struct {
	ProjectID string
	Name      string
	Sealed    []byte
	UpdatedAt time.Time
}

func (secretRow) TableName() string { return "project_secrets" }

// PutSecret stores or replaces a sealed secret.
func (s *DB) PutSecret(ctx context.Context, project, name string, sealed []byte) error {
	return s.transaction(ctx, func(tx *gorm.DB) error {
		projectID, err := s.ensureProject(tx, project)
		if err != nil {
			return err
		}
		row := secretRow{ProjectID: projectID, Name: name, Sealed: sealed, UpdatedAt: s.now()}
		return tx.Clauses(clause.OnConflict{
			Columns:   []clause.Column{{Name: "project_id"}, {Name: "name"}},
			DoUpdates: clause.AssignmentColumns([]string{"sealed", "updated_at"}),
		}).Create(&row).Error
	})
}

// DeleteSecret removes a secret.
func (s *DB) DeleteSecret(ctx context.Context, project, name string) error {
	res := s.db.WithContext(ctx).Exec(`DELETE FROM project_secrets WHERE name = ? AND project_id = (SELECT id FROM projects WHERE name = ?)`, name, project)
	if res.Error != nil {
		return fmt.Errorf("delete secret: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return server.Errorf(server.ENOTFOUND, "project %q has no secret %q", project, name)
	}
	return nil
}

// SecretNames lists a project's secret names.
func (s *DB) SecretNames(ctx context.Context, project string) ([]string, error) {
	names := []string{}
	err := s.db.WithContext(ctx).Raw(`SELECT s.name FROM project_secrets s JOIN projects p ON p.id = s.project_id
		WHERE p.name = ? ORDER BY s.name`, project).Scan(&names).Error
	if err != nil {
		return nil, fmt.Errorf("secret names: %w", err)
	}
	return names, nil
}

// SealedSecrets returns the sealed values of the named secrets that exist.
func (s *DB) SealedSecrets(ctx context.Context, project string, names []string) (map[string][]byte, error) {
	out := map[string][]byte{}
	if len(names) == 0 {
		return out, nil
	}
	var rows []secretRow
	err := s.db.WithContext(ctx).Raw(`SELECT s.* FROM project_secrets s JOIN projects p ON p.id = s.project_id
		WHERE p.name = ? AND s.name IN ?`, project, names).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("sealed secrets: %w", err)
	}
	for _, r := range rows {
		out[r.Name] = r.Sealed
	}
	return out, nil
}
