package agent

import "testing"

func TestTransition(t *testing.T) {
	t.Parallel()
	events := []Event{EventRegistered, EventEnable, EventDisable, EventDrain, EventDelete, EventLost, EventShutdown, EventIdle}
	want := map[State]map[Event]State{
		StateRegistering: {EventRegistered: StateReady, EventShutdown: StateStopped, EventDrain: StateStopped},
		StateReady:       {EventDisable: StateDisabled, EventDrain: StateDraining, EventDelete: StateDeleting, EventLost: StateIdle},
		StateDisabled:    {EventEnable: StateReady, EventDrain: StateDraining, EventDelete: StateDeleting, EventLost: StateIdle},
		StateIdle:        {EventEnable: StateReady, EventDisable: StateDisabled, EventDrain: StateDraining, EventDelete: StateDeleting},
		StateDraining:    {EventDelete: StateDeleting, EventIdle: StateStopped},
		StateDeleting:    {EventIdle: StateStopped},
	}
	for _, s := range States() {
		for _, e := range events {
			exp, ok := want[s][e]
			if !ok {
				exp = s // events that do not apply change nothing
			}
			if got := Transition(s, e); got != exp {
				t.Errorf("Transition(%s, %s) = %s, want %s", s, e, got, exp)
			}
		}
	}
}

func TestBackoffStaysWithinBounds(t *testing.T) {
	t.Parallel()
	b := Backoff{Min: 100, Max: 1000}
	for attempt := 0; attempt < 70; attempt++ {
		ceiling := min(int64(100)<<min(attempt, 20), 1000)
		for i := 0; i < 50; i++ {
			d := b.Delay(attempt)
			if d < 50 || int64(d) > ceiling {
				t.Fatalf("Delay(%d) = %d, want within [50, %d]", attempt, d, ceiling)
			}
		}
	}
}
