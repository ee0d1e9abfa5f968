package api_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/shared/protocol"
)

// runsOf counts a project's runs by trigger through the store.
func scheduledRuns(t *testing.T, ts *testServer, id string) string {
	t.Helper()
	list, err := ts.srv.Schedules.ListSchedules(t.Context(), "cron")
	if err != nil || len(list) != 1 {
		t.Fatalf("schedules %v %v", list, err)
	}
	return list[0].LastRunID
}

// A schedule starts its runbook at each tick; bad cron, timezone or a
// runbook that would not start are refused when it is set.
func TestScheduleStartsRuns(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	rb := "params:\n  who: {type: string, required: true}\nsteps:\n  - name: nightly\n    command: echo ${{ params.who }}\n"
	for _, bad := range []map[string]any{
		{"cron": "not cron", "runbook": rb, "params": map[string]any{"who": "x"}},
		{"cron": "@daily", "timezone": "Mars/Olympus", "runbook": rb, "params": map[string]any{"who": "x"}},
		{"cron": "@daily", "runbook": rb},    // missing param
		{"cron": "@daily"},                   // no runbook
		{"cron": "@daily", "branch": "main"}, // no repository
	} {
		if res := ts.admin(t, "PUT", "/api/v1/projects/cron/schedules/nightly", bad); res.Status != http.StatusBadRequest {
			t.Errorf("%v: %d %s, want 400", bad, res.Status, res.Body)
		}
	}
	res := ts.admin(t, "PUT", "/api/v1/projects/cron/schedules/nightly",
		map[string]any{"cron": "@every 1s", "runbook": rb, "params": map[string]any{"who": "cron"}})
	wantStatus(t, "put schedule", res, http.StatusOK)
	var sch protocol.Schedule
	res.decode(t, &sch)
	if sch.NextAt == nil || time.Until(*sch.NextAt) > 2*time.Second {
		t.Errorf("schedule %+v", sch)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ts.srv.RunSchedules(ctx, 100*time.Millisecond)
	go ts.srv.RunSchedules(ctx, 100*time.Millisecond) // a second replica
	var runID string
	deadline := time.Now().Add(10 * time.Second)
	for runID == "" && time.Now().Before(deadline) {
		runID = scheduledRuns(t, ts, "")
		time.Sleep(50 * time.Millisecond)
	}
	if runID == "" {
		t.Fatal("no scheduled run")
	}
	run := ts.getRun(t, runID)
	if run.Trigger != "schedule" || run.Params["who"] != "cron" {
		t.Errorf("run %+v", run)
	}
}

// A schedule whose ticks passed while the server was down starts one run
// (for the latest), not one per missed tick.
func TestMissedTicksStartOneRun(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	rb := "steps:\n  - name: hourly\n    command: x\n"
	err := ts.srv.Schedules.PutSchedule(t.Context(), &server.Schedule{Project: "cron", Name: "hourly", Cron: "@every 1m",
		Timezone: "UTC", Runbook: rb, NextAt: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ts.srv.RunSchedules(ctx, 50*time.Millisecond)
	go ts.srv.RunSchedules(ctx, 50*time.Millisecond)
	var runID string
	deadline := time.Now().Add(10 * time.Second)
	for runID == "" && time.Now().Before(deadline) {
		runID = scheduledRuns(t, ts, "")
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // room for a wrong second run
	cancel()
	list, _ := ts.srv.Schedules.ListSchedules(t.Context(), "cron")
	if runID == "" || !list[0].NextAt.After(time.Now()) {
		t.Fatalf("run %q, next %s", runID, list[0].NextAt)
	}
	agent := ts.newAgent(t, "counter")
	agent.reserveStep(t, ts, "hourly")
	wantStatus(t, "a second run for the missed ticks", agent.reserve(t, ts, "0s"), http.StatusNoContent)
}

// A schedule every second fires once per second of an injected clock.
func TestScheduleWithInjectedClock(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	var mu sync.Mutex
	clock := time.Now().UTC().Truncate(time.Second) // near the real clock: agent tokens check skew
	ts.srv.SetNow(func() time.Time { mu.Lock(); defer mu.Unlock(); return clock })
	res := ts.admin(t, "PUT", "/api/v1/projects/tick/schedules/every-second",
		map[string]any{"cron": "@every 1s", "runbook": "steps:\n  - name: tick\n    command: x\n"})
	wantStatus(t, "put schedule", res, http.StatusOK)
	var sch protocol.Schedule
	res.decode(t, &sch)
	if !sch.NextAt.Equal(clock.Add(time.Second)) {
		t.Fatalf("next tick %s, want one second after the clock's %s", sch.NextAt, clock)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ts.srv.RunSchedules(ctx, 20*time.Millisecond)
	agent := ts.newAgent(t, "ticker")
	wantStatus(t, "nothing before the first tick", agent.reserve(t, ts, "0s"), http.StatusNoContent)
	for i := 1; i <= 3; i++ {
		mu.Lock()
		clock = clock.Add(time.Second)
		mu.Unlock()
		res := agent.reserve(t, ts, "5s")
		wantStatus(t, fmt.Sprintf("tick %d", i), res, http.StatusOK)
		as := agent.open(t, ts, res)
		wantStatus(t, "complete", agent.complete(t, ts, as.StepID, protocol.StepResult{Attempt: 1, ExitCode: new(0)}), http.StatusNoContent)
	}
	time.Sleep(200 * time.Millisecond) // the clock stands still: no more ticks
	wantStatus(t, "no fourth tick", agent.reserve(t, ts, "0s"), http.StatusNoContent)
}
