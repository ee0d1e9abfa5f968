package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/baton-ci/baton/server"
)

var _ server.NotificationStore = (*DB)(nil)

type notificationRow struct {
	ID        string
	ProjectID string
	Body      string
	Attempts  int
	NextAt    int64
	State     string
	Error     string
	CreatedAt time.Time
}

func (notificationRow) TableName() string { return "notifications" }

// stateEvent is the JSON a notification carries.
type stateEvent struct {
	Kind    string    `json:"kind"` // run or step
	RunID   string    `json:"run_id"`
	Project string    `json:"project"`
	Step    string    `json:"step,omitempty"`
	State   string    `json:"state"`
	Reason  string    `json:"reason,omitempty"`
	At      time.Time `json:"at"`
}

// notifyCacheFor is how long a replica trusts what it read of a project's
// notify URL (a newly set URL takes effect within it).
const notifyCacheFor = 2 * time.Second

// notifyCache remembers which runs' projects want notifications, so a
// state change costs no query when none does.
type notifyCache struct {
	mu   sync.Mutex
	runs map[string]notifyEntry // run id -> whether its project has a notify URL
}

type notifyEntry struct {
	on              bool // the project has a notify URL
	projectID, name string
	until           time.Time
}

// notifyTarget returns the run's project if it has a notify URL (cached).
func (s *DB) notifyTarget(tx *gorm.DB, runID string) (notifyEntry, error) {
	now := time.Now()
	c := &s.notifies
	c.mu.Lock()
	if c.runs == nil || len(c.runs) > 10_000 {
		c.runs = map[string]notifyEntry{}
	}
	e, ok := c.runs[runID]
	c.mu.Unlock()
	if ok && now.Before(e.until) {
		return e, nil
	}
	var found []struct{ ID, Name string }
	if err := tx.Raw(`SELECT p.id, p.name FROM runs r JOIN projects p ON p.id = r.project_id WHERE r.id = ? AND p.notify_url <> ''`,
		runID).Scan(&found).Error; err != nil {
		return e, fmt.Errorf("notify url of run %s: %w", runID, err)
	}
	e = notifyEntry{until: now.Add(notifyCacheFor)}
	if len(found) == 1 {
		e.on, e.projectID, e.name = true, found[0].ID, found[0].Name
	}
	c.mu.Lock()
	c.runs[runID] = e
	c.mu.Unlock()
	return e, nil
}

// notify queues a notification of a state change, in the caller's
// transaction, if the run's project has a notify URL.
func (s *DB) notify(tx *gorm.DB, runID, step, state, reason string) error {
	target, err := s.notifyTarget(tx, runID)
	if err != nil || !target.on {
		return err
	}
	kind := "run"
	if step != "" {
		kind = "step"
	}
	now := s.now()
	body, err := json.Marshal(stateEvent{Kind: kind, RunID: runID, Project: target.name, Step: step, State: state, Reason: reason, At: now})
	if err != nil {
		return err
	}
	row := notificationRow{ID: uuid.Must(uuid.NewV7()).String(), ProjectID: target.projectID, Body: string(body),
		NextAt: now.UnixMilli(), State: "queued", CreatedAt: now}
	if err := tx.Create(&row).Error; err != nil {
		return fmt.Errorf("queue notification: %w", err)
	}
	return nil
}

// ClaimNotification takes the oldest due notification with one conditional
// update (several replicas never send one twice at once).
func (s *DB) ClaimNotification(ctx context.Context, hold time.Duration) (*server.Notification, error) {
	var out *server.Notification
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		now := s.now().UnixMilli()
		var rows []notificationRow
		if err := tx.Raw(`UPDATE notifications SET next_at = ?, attempts = attempts + 1
			WHERE id = (SELECT id FROM notifications WHERE state = 'queued' AND next_at <= ? ORDER BY next_at, id LIMIT 1)
				AND state = 'queued' AND next_at <= ?
			RETURNING *`, now+hold.Milliseconds(), now, now).Scan(&rows).Error; err != nil {
			return fmt.Errorf("claim notification: %w", err)
		}
		if len(rows) == 0 {
			return nil
		}
		var p projectRow
		if err := tx.Where("id = ?", rows[0].ProjectID).Take(&p).Error; err != nil {
			return err
		}
		out = &server.Notification{ID: rows[0].ID, Project: p.Name, URL: p.NotifyURL, Body: []byte(rows[0].Body),
			Attempts: rows[0].Attempts, CreatedAt: rows[0].CreatedAt.UTC()}
		return nil
	})
	return out, err
}

// NotificationSent records a delivery.
func (s *DB) NotificationSent(ctx context.Context, id string) error {
	return s.db.WithContext(ctx).Model(&notificationRow{}).Where("id = ?", id).Updates(map[string]any{"state": "sent", "error": ""}).Error
}

// NotificationFailed records a failed attempt.
func (s *DB) NotificationFailed(ctx context.Context, id, reason string, retryAt time.Time) error {
	updates := map[string]any{"error": reason}
	if retryAt.IsZero() {
		updates["state"] = "failed"
	} else {
		updates["next_at"] = retryAt.UnixMilli()
	}
	return s.db.WithContext(ctx).Model(&notificationRow{}).Where("id = ?", id).Updates(updates).Error
}
