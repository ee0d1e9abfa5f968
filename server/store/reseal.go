package store

import (
	"context"
	"fmt"

	"gorm.io/gorm"
)

// ResealSecrets passes every stored secret (project name, secret name,
// sealed value) through reseal and stores what it returns, all in one
// transaction: either every secret is re-sealed or none is. It returns how
// many were rewritten (reseal returning the value unchanged skips the
// write). Used to rotate the server's secrets key.
func (s *DB) ResealSecrets(ctx context.Context, reseal func(project, name string, sealed []byte) ([]byte, error)) (int, error) {
	n := 0
	err := s.transaction(ctx, func(tx *gorm.DB) error {
		n = 0
		var rows []struct {
			Project   string
			ProjectID string
			Name      string
			Sealed    []byte
		}
		if err := tx.Raw(`SELECT p.name AS project, s.project_id, s.name, s.sealed FROM project_secrets s
			JOIN projects p ON p.id = s.project_id ORDER BY p.name, s.name` + lockSecrets(s.d.locks)).Scan(&rows).Error; err != nil {
			return fmt.Errorf("read secrets: %w", err)
		}
		for _, r := range rows {
			sealed, err := reseal(r.Project, r.Name, r.Sealed)
			if err != nil {
				return err
			}
			if string(sealed) == string(r.Sealed) {
				continue
			}
			if err := tx.Exec(`UPDATE project_secrets SET sealed = ?, updated_at = ? WHERE project_id = ? AND name = ?`,
				sealed, s.now(), r.ProjectID, r.Name).Error; err != nil {
				return fmt.Errorf("store secret %s/%s: %w", r.Project, r.Name, err)
			}
			n++
		}
		return nil
	})
	return n, err
}

// lockSecrets locks the secrets read (PostgreSQL), so a PUT from a replica
// still running waits instead of being overwritten.
func lockSecrets(locks bool) string {
	if locks {
		return ` FOR UPDATE OF s`
	}
	return ""
}
