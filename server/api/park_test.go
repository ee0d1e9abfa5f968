package api_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/baton-ci/baton/server/api"
	"github.com/baton-ci/baton/server/control"
	"github.com/baton-ci/baton/shared/protocol"
)

// controlStream opens the agent's control channel and returns the kinds of
// the events it reads; it returns once the server counts the agent
// connected.
func (a *testAgent) controlStream(t *testing.T, ts *testServer) <-chan string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+protocol.PathEvents, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+a.Token)
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatalf("open the control channel: %v", err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		resp.Body.Close()
		t.Fatalf("control channel answered %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	kinds := make(chan string, 64)
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if kind, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
				select {
				case kinds <- kind:
				default: // the test reads what it needs
				}
			}
		}
	}()
	// A hijacked stream is not closed by the test server: close it here.
	t.Cleanup(ts.srv.Control.Close)
	waitFor(t, 5*time.Second, "the control channel to connect", func() bool { return ts.srv.Control.Connected(a.ID) })
	return kinds
}

// parkedReserve is the answer to a reserve poll that may park.
type parkedReserve struct {
	response
	close   bool // the server closes the connection after it
	elapsed time.Duration
}

// reservePark reserves with ?park=1, reporting whether the server closes
// the connection after the answer.
func (a *testAgent) reservePark(t *testing.T, ts *testServer, wait string) parkedReserve {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.URL+protocol.PathReserve+"?wait="+wait+"&park=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+a.Token)
	start := time.Now()
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatalf("reserve: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.ProtoMajor != 1 {
		t.Fatalf("reserve over %s, want HTTP/1.x", resp.Proto)
	}
	return parkedReserve{response: response{Status: resp.StatusCode, Header: resp.Header, Body: body},
		close: resp.Close, elapsed: time.Since(start)}
}

// An agent whose control channel is connected and that asks to park is
// parked when nothing came for ParkAfter: 204 with X-Baton-Parked, and the
// connection closes (it keeps only its control channel). A new run then
// hints it "work" on the channel, and its next poll gets the step.
func TestReserveParksAndHintsWork(t *testing.T) {
	t.Parallel()
	const parkAfter = 200 * time.Millisecond
	ts := newTestServerWith(t, func(s *api.Server) { s.ParkAfter = parkAfter })
	agent := ts.newAgent(t, "parker")
	events := agent.controlStream(t, ts)

	res := agent.reservePark(t, ts, "20s")
	wantStatus(t, "reserve that parks", &res.response, http.StatusNoContent)
	if got := res.Header.Get(protocol.HeaderParked); got != "1" {
		t.Fatalf("%s = %q, want 1", protocol.HeaderParked, got)
	}
	if !res.close {
		t.Error("the parked answer keeps the connection open; an idle agent should hold only its control channel")
	}
	if res.elapsed < parkAfter || res.elapsed > 5*time.Second {
		t.Errorf("parked after %s, want about %s (the wait was 20s)", res.elapsed, parkAfter)
	}
	if n := ts.srv.Wake.Parked(); n != 1 {
		t.Fatalf("Wake.Parked() = %d, want 1", n)
	}

	run := ts.createRun(t, "park", diamondRunbook)
	timeout := time.After(5 * time.Second)
	for kind := ""; kind != control.EventWork; {
		select {
		case kind = <-events:
		case <-timeout:
			t.Fatal("no work hint on the control channel within 5s of the run being created")
		}
	}
	if n := ts.srv.Wake.Parked(); n != 0 {
		t.Errorf("Wake.Parked() = %d after the hint, want 0", n)
	}
	as := agent.reserveStep(t, ts, "a")
	if as.RunID != run.ID {
		t.Errorf("reserved a step of run %s, want %s", as.RunID, run.ID)
	}
}

// An agent is parked only when it can be hinted: without a control channel
// here, or with ParkAfter 0, a poll that asks to park is held for its whole
// wait and answers a plain 204.
func TestReserveParksOnlyWithControlChannelAndParkAfter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		parkAfter time.Duration
		channel   bool
	}{
		{"no control channel", 100 * time.Millisecond, false},
		{"ParkAfter 0", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServerWith(t, func(s *api.Server) { s.ParkAfter = tc.parkAfter })
			agent := ts.newAgent(t, "holder")
			if tc.channel {
				agent.controlStream(t, ts)
			}
			const wait = 600 * time.Millisecond
			res := agent.reservePark(t, ts, wait.String())
			wantStatus(t, "reserve with park=1", &res.response, http.StatusNoContent)
			if got := res.Header.Get(protocol.HeaderParked); got != "" {
				t.Errorf("%s = %q, want none: the agent cannot be hinted", protocol.HeaderParked, got)
			}
			if res.elapsed < wait {
				t.Errorf("answered after %s, want the whole wait %s", res.elapsed, wait)
			}
			if n := ts.srv.Wake.Parked(); n != 0 {
				t.Errorf("Wake.Parked() = %d, want 0", n)
			}
		})
	}
}

// A parked agent's periodic look (parked, not hinted since) is answered
// parked after one look, not held for the park time again.
func TestParkedAgentsLookIsParkedAtOnce(t *testing.T) {
	t.Parallel()
	const parkAfter = time.Second
	ts := newTestServerWith(t, func(s *api.Server) { s.ParkAfter = parkAfter })
	agent := ts.newAgent(t, "looker")
	agent.controlStream(t, ts)

	first := agent.reservePark(t, ts, "20s")
	if first.Header.Get(protocol.HeaderParked) != "1" || first.elapsed < parkAfter {
		t.Fatalf("first poll: parked %q after %s, want parked after %s", first.Header.Get(protocol.HeaderParked), first.elapsed, parkAfter)
	}
	look := agent.reservePark(t, ts, "20s")
	if look.Header.Get(protocol.HeaderParked) != "1" || look.elapsed >= parkAfter/2 {
		t.Errorf("periodic look: parked %q after %s, want parked at once", look.Header.Get(protocol.HeaderParked), look.elapsed)
	}
	// Work that is there is still taken by the look.
	ts.createRun(t, "look", "steps:\n  - name: a\n    command: x\n")
	agent.reserveStep(t, ts, "a")
}
