package agent

import "testing"

func TestTransition(t *testing.T) {
	t.Parallel()
	all := []State{StateRegistering, StateReady, StateDraining, StateStopped}
	events := []Event{EventRegistered, EventShutdown, EventIdle}
	want := map[State]map[Event]State{
		StateRegistering: {EventRegistered: StateReady, EventShutdown: StateStopped},
		StateReady:       {EventShutdown: StateDraining},
		StateDraining:    {EventIdle: StateStopped},
	}
	for _, s := range all {
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
