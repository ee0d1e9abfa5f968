package store_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/server/store"
)

// One idempotency key starts one run of a project, also when two callers
// race (on PostgreSQL the loser's insert fails inside the transaction).
func TestIdempotencyKeyStartsOneRun(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		var wg sync.WaitGroup
		ids := make(chan string, 8)
		for range 8 {
			wg.Go(func() {
				run := &server.Run{Project: "p", Runbook: "x", IdempotencyKey: "k1", Steps: independentSteps(1)}
				err := s.CreateRun(t.Context(), run)
				if err != nil && !errors.Is(err, server.ErrRunExists) {
					t.Errorf("CreateRun: %v", err)
				}
				ids <- run.ID
			})
		}
		wg.Wait()
		close(ids)
		first := ""
		for id := range ids {
			if first == "" {
				first = id
			} else if id != first {
				t.Errorf("one key, two runs: %s and %s", first, id)
			}
		}
	})
}

// A delivery is recorded once and claimed by one caller.
func TestHookDeliveries(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		d := &server.HookDelivery{Project: "p", Provider: "github", DeliveryID: "d1", Event: "{}", State: server.HookQueued}
		if _, created, err := s.RecordDelivery(t.Context(), d); err != nil || !created {
			t.Fatalf("RecordDelivery = %v, %v", created, err)
		}
		again, created, err := s.RecordDelivery(t.Context(), &server.HookDelivery{Project: "p", Provider: "github", DeliveryID: "d1", State: server.HookQueued})
		if err != nil || created || again.DeliveryID != "d1" {
			t.Fatalf("redelivery = %+v, %v, %v", again, created, err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		claimed := 0
		for range 4 {
			wg.Go(func() {
				c, err := s.ClaimDelivery(t.Context(), time.Hour)
				if err != nil {
					t.Errorf("ClaimDelivery: %v", err)
				}
				if c != nil {
					mu.Lock()
					claimed++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if claimed != 1 {
			t.Errorf("%d callers claimed the one delivery", claimed)
		}
		d.State, d.RunID = server.HookDone, "r1"
		if err := s.FinishDelivery(t.Context(), d); err != nil {
			t.Fatal(err)
		}
		got, _, _ := s.RecordDelivery(t.Context(), &server.HookDelivery{Project: "p", Provider: "github", DeliveryID: "d1"})
		if got.State != server.HookDone || got.RunID != "r1" {
			t.Errorf("finished delivery %+v", got)
		}
	})
}

// A schedule's tick is claimed once; the audit trail keeps events in order.
func TestScheduleTicksAndAudit(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.DB) {
		due := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
		sch := &server.Schedule{Project: "p", Name: "nightly", Cron: "@daily", Timezone: "UTC", Runbook: "x", NextAt: due}
		if err := s.PutSchedule(t.Context(), sch); err != nil {
			t.Fatal(err)
		}
		list, err := s.DueSchedules(t.Context(), time.Now())
		if err != nil || len(list) != 1 || list[0].Project != "p" {
			t.Fatalf("DueSchedules = %+v, %v", list, err)
		}
		next := time.Now().Add(time.Hour)
		won := 0
		for range 3 {
			if ok, err := s.ClaimTick(t.Context(), list[0].ID, list[0].NextAt, next); err != nil {
				t.Fatal(err)
			} else if ok {
				won++
			}
		}
		if won != 1 {
			t.Errorf("the tick was claimed %d times", won)
		}
		for _, a := range []string{"approve", "cancel"} {
			if err := s.Audit(t.Context(), server.AuditEvent{Actor: "admin", Action: a, RunID: "r"}); err != nil {
				t.Fatal(err)
			}
		}
		events, err := s.RunAudit(t.Context(), "r")
		if err != nil || len(events) != 2 || events[0].Action != "approve" {
			t.Errorf("audit %+v %v", events, err)
		}
	})
}
