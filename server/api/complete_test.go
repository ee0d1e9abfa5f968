package api_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/baton-ci/baton/shared/protocol"
)

// The server announces what a completion may carry; a completion stores
// its last log chunk before the result is judged, and brings the agent's
// next step back when it asks.
func TestCompletionCarriesLogAndBringsNextStep(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	agent := ts.newAgent(t, "swift")
	res := agent.call(t, ts, http.MethodGet, protocol.PathAgentState, "", nil)
	wantStatus(t, "state", res, http.StatusOK)
	var st protocol.AgentState
	res.decode(t, &st)
	if !st.Config.Has(protocol.FeatureCompleteLog) || !st.Config.Has(protocol.FeatureCompleteNext) {
		t.Fatalf("features %v: want complete-log and complete-next", st.Config.Features)
	}

	run := ts.createRun(t, "swift", "steps:\n  - name: a\n    command: x\n    assert:\n      output_matches: \"(?m)^done$\"\n"+
		"  - name: b\n    command: x\n    depends_on: [a]\n")
	a := agent.reserveStep(t, ts, "a")
	wantStatus(t, "first chunk", agent.appendLog(t, ts, a.StepID, 1, 0, "hello\n"), http.StatusNoContent)
	at := time.Now().UnixMilli()
	result := protocol.StepResult{Attempt: 1, ExitCode: new(0), Next: true,
		Log: &protocol.LogChunk{Offset: 6, Data: []byte("done\n"), Times: fmt.Sprintf("0:%d", at)}}
	res = agent.complete(t, ts, a.StepID, result)
	wantStatus(t, "complete a with its last chunk, asking for the next step", res, http.StatusOK)
	var done protocol.CompleteResponse
	res.decode(t, &done)
	if done.Next == nil {
		t.Fatalf("no next step in %s", res.Body)
	}
	b := agent.openReservation(t, ts, *done.Next)
	if b.StepName != "b" || b.RunID != run.ID {
		t.Errorf("next step %q of run %s, want b of %s", b.StepName, b.RunID, run.ID)
	}
	// The assert saw the chunk that came with the result.
	got := ts.getRun(t, run.ID)
	if stepStates(got) != "a=succeeded b=running" {
		t.Errorf("after a: %s", stepStates(got))
	}
	log := func() string {
		res := ts.admin(t, http.MethodGet, "/api/v1/runs/"+run.ID+"/steps/a/log", nil)
		wantStatus(t, "get log", res, http.StatusOK)
		return string(res.Body)
	}
	if got := log(); got != "hello\ndone\n" {
		t.Errorf("log %q, want %q", got, "hello\ndone\n")
	}
	// A retried report is acknowledged; its chunk is not stored twice.
	result.Next = false
	wantStatus(t, "complete a again", agent.complete(t, ts, a.StepID, result), http.StatusNoContent)
	if got := log(); got != "hello\ndone\n" {
		t.Errorf("log after the retry %q", got)
	}
	// Nothing is left to hand out: 204.
	wantStatus(t, "complete b asking for more", agent.complete(t, ts, b.StepID,
		protocol.StepResult{Attempt: 1, ExitCode: new(0), Next: true}), http.StatusNoContent)
	if got := ts.getRun(t, run.ID); got.State != "succeeded" {
		t.Errorf("run %s, want succeeded", got.State)
	}
}

// A disabled agent's completion counts but brings no next step; a log
// chunk that is not valid is dropped, not the result.
func TestCompletionNextOnlyForEnabledAgents(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	agent := ts.newAgent(t, "tired")
	run := ts.createRun(t, "tired", "steps:\n  - name: x\n    command: x\n  - name: y\n    command: x\n")
	x := agent.reserveStep(t, ts, "x")
	wantStatus(t, "disable", ts.admin(t, "POST", "/api/v1/agents/"+agent.ID+"/disable", nil), http.StatusOK)
	bad := &protocol.LogChunk{Offset: 0, Data: []byte("out\n"), Times: "7:1"} // offset outside the chunk
	wantStatus(t, "complete x while disabled", agent.complete(t, ts, x.StepID,
		protocol.StepResult{Attempt: 1, ExitCode: new(0), Next: true, Log: bad}), http.StatusNoContent)
	got := ts.getRun(t, run.ID)
	if states := stepStates(got); !slices.Contains(strings.Fields(states), "x=succeeded") || !slices.Contains(strings.Fields(states), "y=ready") {
		t.Errorf("after x: %s, want x succeeded and y still ready", states)
	}
	res := ts.admin(t, http.MethodGet, "/api/v1/runs/"+run.ID+"/steps/x/log", nil)
	wantStatus(t, "get log", res, http.StatusOK)
	if len(res.Body) != 0 {
		t.Errorf("log %q: the invalid chunk was stored", res.Body)
	}
}

// A report retried because its answer was lost gets the step that answer
// carried, under the same lease, not another one: the first stays the
// agent's and would otherwise wait out its lease.
func TestRetriedReportGetsTheSameNextStep(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	agent := ts.newAgent(t, "retrier")
	ts.createRun(t, "retry", "steps:\n  - name: a\n    command: x\n  - name: b\n    command: x\n    depends_on: [a]\n"+
		"  - name: c\n    command: x\n    depends_on: [a]\n")
	a := agent.reserveStep(t, ts, "a")
	result := protocol.StepResult{Attempt: 1, ExitCode: new(0), Next: true}
	var first, again protocol.CompleteResponse
	res := agent.complete(t, ts, a.StepID, result)
	wantStatus(t, "complete a", res, http.StatusOK)
	res.decode(t, &first)
	res = agent.complete(t, ts, a.StepID, result) // the answer was lost
	wantStatus(t, "complete a again", res, http.StatusOK)
	res.decode(t, &again)
	if first.Next == nil || again.Next == nil {
		t.Fatalf("next steps %+v and %+v", first.Next, again.Next)
	}
	if again.Next.StepID != first.Next.StepID || again.Next.LeaseID != first.Next.LeaseID || again.Next.Attempt != 1 {
		t.Errorf("the retried report got step %s under lease %s, want %s under %s", again.Next.StepID, again.Next.LeaseID,
			first.Next.StepID, first.Next.LeaseID)
	}
	handed := agent.openReservation(t, ts, *again.Next)
	if handed.StepID != first.Next.StepID {
		t.Errorf("sealed assignment for %s", handed.StepID)
	}
	// The other ready step is still there for whoever asks.
	other := ts.newAgent(t, "other")
	other.reserveStep(t, ts, map[string]string{"b": "c", "c": "b"}[handed.StepName])
}
