package server

import (
	"context"
	"time"
)

// HookDelivery is a webhook delivery as recorded: the event it carried (as
// the webhook package encodes it) and what became of it.
type HookDelivery struct {
	Project    string
	Provider   string
	DeliveryID string
	Event      string // JSON; "" for an ignored delivery
	State      string // HookQueued, HookProcessing, HookDone, HookIgnored, HookFailed
	RunID      string
	Error      string
	ReceivedAt time.Time
}

// Delivery states.
const (
	HookQueued     = "queued"
	HookProcessing = "processing"
	HookDone       = "done"
	HookIgnored    = "ignored"
	HookFailed     = "failed"
)

// HookStore records webhook deliveries once each.
type HookStore interface {
	// RecordDelivery stores a new delivery. If the same delivery was
	// recorded before it returns that one and created false.
	RecordDelivery(ctx context.Context, d *HookDelivery) (existing *HookDelivery, created bool, err error)
	// ClaimDelivery takes the oldest queued delivery for processing; nil
	// when none waits. Deliveries claimed longer ago than stale are taken
	// again (their server died).
	ClaimDelivery(ctx context.Context, stale time.Duration) (*HookDelivery, error)
	// FinishDelivery records how a claimed delivery ended.
	FinishDelivery(ctx context.Context, d *HookDelivery) error
}
