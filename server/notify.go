package server

import (
	"context"
	"time"
)

// Notification is one signed webhook to send: a run's or a step's new
// state, for the project's notify URL.
type Notification struct {
	ID        string
	Project   string
	URL       string
	Body      []byte // JSON of protocol.StateEvent
	Attempts  int
	CreatedAt time.Time
}

// NotificationStore is the outbox of notifications.
type NotificationStore interface {
	// ClaimNotification takes the oldest due notification for sending, or
	// nil; it is not due again for hold.
	ClaimNotification(ctx context.Context, hold time.Duration) (*Notification, error)
	// NotificationSent records a delivery; NotificationFailed records a
	// failed attempt and when to try again (zero: give up).
	NotificationSent(ctx context.Context, id string) error
	NotificationFailed(ctx context.Context, id, reason string, retryAt time.Time) error
}
