package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/baton-ci/baton/server"
)

// CreateRegistrationToken stores a registration token's hash.
func (s *DB) CreateRegistrationToken(ctx context.Context, t *server.RegistrationToken) error {
	if t.ID == "" {
		t.ID = uuid.Must(uuid.NewV7()).String()
	}
	t.CreatedAt = s.now()
	row := registrationTokenRow{ID: t.ID, Hash: t.Hash, Description: t.Description, CreatedAt: t.CreatedAt,
		ExpiresAt: t.ExpiresAt, MaxUses: t.MaxUses}
	if err := s.db.WithContext(ctx).Create(&row).Error; err != nil {
		return fmt.Errorf("insert registration token: %w", err)
	}
	return nil
}

// ListRegistrationTokens returns every token, newest first.
func (s *DB) ListRegistrationTokens(ctx context.Context) ([]*server.RegistrationToken, error) {
	var rows []registrationTokenRow
	if err := s.db.WithContext(ctx).Order("created_at DESC, id DESC").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list registration tokens: %w", err)
	}
	out := make([]*server.RegistrationToken, len(rows))
	for i := range rows {
		out[i] = rows[i].domain()
	}
	return out, nil
}

// RevokeRegistrationToken marks a token revoked; revoking twice is fine.
func (s *DB) RevokeRegistrationToken(ctx context.Context, id string) error {
	db := s.db.WithContext(ctx)
	res := db.Model(&registrationTokenRow{}).Where("id = ? AND revoked_at IS NULL", id).Update("revoked_at", s.now())
	if res.Error != nil {
		return fmt.Errorf("revoke registration token: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		var n int64
		if err := db.Model(&registrationTokenRow{}).Where("id = ?", id).Count(&n).Error; err != nil {
			return err
		}
		if n == 0 {
			return server.Errorf(server.ENOTFOUND, "registration token %q not found", id)
		}
	}
	return nil
}

// RegisterAgent creates the agent, or refreshes a known one presenting the
// same signing key. The registration token must exist in both cases.
func (s *DB) RegisterAgent(ctx context.Context, a *server.Agent, tokenHash []byte) error {
	defer s.agents.forget(a.ID)
	return s.transaction(ctx, func(tx *gorm.DB) error {
		// Locked: two new agents must not both spend a token's last use.
		var tok registrationTokenRow
		if err := s.locking(tx).Where("hash = ?", tokenHash).Take(&tok).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return server.Errorf(server.EUNAUTHORIZED, "registration token is not valid")
			}
			return fmt.Errorf("find registration token: %w", err)
		}
		now := s.now()
		labels, err := json.Marshal(nonNil(a.Labels))
		if err != nil {
			return err
		}
		labelsJSON := string(labels)
		var row agentRow
		err = tx.Where("id = ?", a.ID).Take(&row).Error
		switch {
		case errors.Is(err, gorm.ErrRecordNotFound):
			// Only a new agent spends the token; an agent that restarts
			// with its keys is let back in even after the token expired,
			// was used up or revoked (delete the agent to shut it out).
			if why := tok.domain().Usable(now); why != "" {
				return server.Errorf(server.EUNAUTHORIZED, "%s", why)
			}
			row = agentRow{
				ID: a.ID, Name: a.Name, Version: a.Version, Labels: labelsJSON, State: string(server.AgentEnabled),
				SigningKey: a.SigningKey, HPKEKey: a.HPKEKey, CreatedAt: now, LastSeen: now, Config: "{}",
			}
			if err := tx.Create(&row).Error; err != nil {
				return fmt.Errorf("insert agent: %w", err)
			}
			if err := tx.Model(&registrationTokenRow{}).Where("id = ?", tok.ID).
				Update("uses", gorm.Expr("uses + 1")).Error; err != nil {
				return fmt.Errorf("count token use: %w", err)
			}
		case err != nil:
			return fmt.Errorf("find agent: %w", err)
		case row.State == string(server.AgentDeleted):
			return server.Errorf(server.EUNAUTHORIZED, "agent %s was deleted; a new agent needs a new identity", a.ID)
		case !bytes.Equal(row.SigningKey, a.SigningKey) || !bytes.Equal(row.HPKEKey, a.HPKEKey):
			return server.Errorf(server.ECONFLICT, "agent %s is registered with other keys", a.ID)
		default:
			row.Name, row.Version, row.Labels, row.LastSeen = a.Name, a.Version, labelsJSON, now
			if err := tx.Model(&agentRow{}).Where("id = ?", a.ID).
				Updates(map[string]any{"name": a.Name, "version": a.Version, "labels": labelsJSON, "last_seen": now}).Error; err != nil {
				return fmt.Errorf("update agent: %w", err)
			}
		}
		*a = *row.domain()
		return nil
	})
}

// FindAgent returns one agent.
func (s *DB) FindAgent(ctx context.Context, id string) (*server.Agent, error) {
	var row agentRow
	if err := s.r.WithContext(ctx).Where("id = ?", id).Take(&row).Error; err != nil {
		return nil, notFound(err, "agent %q not found", id)
	}
	return row.domain(), nil
}

// ListAgents returns every agent, oldest first.
func (s *DB) ListAgents(ctx context.Context) ([]*server.Agent, error) {
	var rows []agentRow
	if err := s.r.WithContext(ctx).Order("created_at, id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	out := make([]*server.Agent, len(rows))
	for i := range rows {
		out[i] = rows[i].domain()
	}
	return out, nil
}

// SetAgentState records an admin's decision about an agent.
func (s *DB) SetAgentState(ctx context.Context, id string, state server.AgentState) error {
	defer s.agents.forget(id)
	return s.transaction(ctx, func(tx *gorm.DB) error {
		var row agentRow
		if err := s.locking(tx).Where("id = ?", id).Take(&row).Error; err != nil {
			return notFound(err, "agent %q not found", id)
		}
		if row.State == string(server.AgentDeleted) && state != server.AgentDeleted {
			return server.Errorf(server.ECONFLICT, "agent %s was deleted; register a new one", id)
		}
		return tx.Model(&agentRow{}).Where("id = ?", id).Update("state", state).Error
	})
}

// SetFleetState sets the state of every agent that is not deleted, not in
// that state already, and has all of labels (all of them when labels is
// empty), in one statement; it returns their ids.
func (s *DB) SetFleetState(ctx context.Context, labels []string, state server.AgentState) ([]string, error) {
	if labels == nil {
		labels = []string{}
	}
	need, err := json.Marshal(labels)
	if err != nil {
		return nil, err
	}
	var ids []string
	defer s.agents.forget()
	err = s.transaction(ctx, func(tx *gorm.DB) error {
		ids = nil
		return tx.Raw(`UPDATE agents AS a SET state = ? WHERE a.state <> ? AND a.state <> ? AND `+s.d.agentCovers+` RETURNING id`,
			state, server.AgentDeleted, state, string(need)).Scan(&ids).Error
	})
	if err != nil {
		return nil, fmt.Errorf("set fleet state %s: %w", state, err)
	}
	return ids, nil
}

// SetAgentSettings replaces an agent's settings.
func (s *DB) SetAgentSettings(ctx context.Context, id string, settings server.AgentSettings) error {
	if err := settings.Validate(); err != nil {
		return err
	}
	cfg, err := json.Marshal(settings)
	if err != nil {
		return err
	}
	defer s.agents.forget(id)
	return s.transaction(ctx, func(tx *gorm.DB) error {
		var row agentRow
		if err := s.locking(tx).Where("id = ?", id).Take(&row).Error; err != nil {
			return notFound(err, "agent %q not found", id)
		}
		if row.State == string(server.AgentDeleted) {
			return server.Errorf(server.ECONFLICT, "agent %s was deleted", id)
		}
		return tx.Model(&agentRow{}).Where("id = ?", id).Update("config", string(cfg)).Error
	})
}

// RunningSteps returns the steps running on an agent, oldest first.
func (s *DB) RunningSteps(ctx context.Context, agentID string) ([]*server.Step, error) {
	var rows []stepRow
	if err := s.db.WithContext(ctx).Where("agent_id = ? AND "+isRunning, agentID).
		Order("started_at").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("running steps of agent %s: %w", agentID, err)
	}
	out := make([]*server.Step, 0, len(rows))
	for i := range rows {
		st, err := rows[i].domain()
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// TouchAgent records when the agent was last heard from.
func (s *DB) TouchAgent(ctx context.Context, id string, now time.Time) error {
	// A transaction of the store's, so that on SQLite it joins the writer's
	// next group commit instead of taking a turn of its own.
	if err := s.transaction(ctx, func(tx *gorm.DB) error {
		return s.write(tx, "touch agent "+id, `UPDATE agents SET last_seen = ? WHERE id = ?`, now.UTC(), id)
	}); err != nil {
		return err
	}
	s.agents.seen(id, now.UTC())
	return nil
}
