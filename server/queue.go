package server

import (
	"context"
	"time"
)

// QueueLine is the ready steps that need one set of labels.
type QueueLine struct {
	Labels []string
	// Ready steps, reservable now or after a retry delay.
	Ready int
	// OldestReady is when the longest-waiting of them became ready.
	OldestReady time.Time
	// Agents is how many enabled agents have all the labels.
	Agents int
}

// StateCounts is how many runs, steps and agents are in each state (by
// the state's name; states with none are absent).
type StateCounts struct {
	Runs, Steps, Agents map[string]int
}

// QueueStore reports the queue and the counts by state, for autoscalers,
// dashboards (/metrics) and the why-waiting view.
type QueueStore interface {
	// Queue returns the ready steps grouped by the labels they need.
	Queue(ctx context.Context) ([]QueueLine, error)
	// CountStates counts runs, steps and agents by state.
	CountStates(ctx context.Context) (StateCounts, error)
}
