package agent

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-ci/baton/shared/engine"
	"github.com/baton-ci/baton/shared/envelope"
	"github.com/baton-ci/baton/shared/protocol"
)

// fakeServer is an in-memory ServerClient: the boundary under test here is
// the agent's own loop; the real server is exercised in server/e2e.
type fakeServer struct {
	key       ed25519.PrivateKey // signs reservations
	agentID   string
	agentKey  []byte             // the registered X25519 key, to seal to
	garbage   bool               // send reservations that do not open
	sessions  *envelope.Sessions // seal in session envelopes (nil: one HPKE message each)
	desired   string             // what State answers; "" is enabled
	events    chan string
	mu        sync.Mutex
	queue     []*protocol.Assignment
	logs      map[string][]byte
	results   map[string]protocol.StepResult
	failNext  int             // AppendLog calls to fail before succeeding
	lease     time.Duration   // the lease length the fake tells the agent
	cancelled map[string]bool // RenewLease answers cancel for these steps
	lost      map[string]bool // RenewLease answers 409 for these steps
	renewals  map[string]int
	lineTimes map[string][]absLineTime
	artifacts map[string][]byte // by key (one run), made on first use
	registers int
	refuse    bool
	completed chan string
	// park: a poll that finds nothing while the control channel is up is
	// answered parked at once, as the server does after its park time.
	park     bool
	reserves int // Reserve calls
	polled   int // of them answered with a step
	// features are what the fake announces (protocol.FeatureCompleteLog,
	// ...); tails counts log chunks that came with a result.
	features []string
	tails    int
	pool     int // the pool size the fake tells the agent; 0 is 2
	// plain: Complete refuses log and next with 400, as a server that
	// does not know them (one replica of a rolling upgrade).
	plain        bool
	refusedParts int
	// loseAnswers: this many reports are recorded but their answers lost
	// (a network error); a retry gets the step handed with the first.
	loseAnswers int
	handed      map[string]*protocol.Reservation
	// holdReserve: a poll waits for it to close before it is answered.
	holdReserve chan struct{}
	parks       int // of them answered parked
	// The control channel: drop ends it (the agent reconnects); connects
	// counts connections, handled the events the Run loop took.
	drop      chan struct{}
	connected bool
	connects  int
	handled   int
}

func newFakeServer(steps ...*protocol.Assignment) *fakeServer {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	return &fakeServer{key: key, events: make(chan string, 10), queue: steps, logs: map[string][]byte{}, results: map[string]protocol.StepResult{},
		completed: make(chan string, 100), drop: make(chan struct{}), lease: time.Minute, cancelled: map[string]bool{}, lost: map[string]bool{}, renewals: map[string]int{},
		lineTimes: map[string][]absLineTime{}, handed: map[string]*protocol.Reservation{}}
}

type refusal struct{}

func (refusal) Error() string { return "refused" }
func (refusal) Refused() bool { return true }

func (f *fakeServer) Register(ctx context.Context, req protocol.RegisterRequest) (protocol.RegisterResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.registers++
	if f.refuse {
		return protocol.RegisterResponse{}, refusal{}
	}
	f.agentID, f.agentKey = req.AgentID, req.HPKEKey
	pool := f.pool
	if pool == 0 {
		pool = 2
	}
	return protocol.RegisterResponse{AgentID: req.AgentID, Config: protocol.AgentConfig{PoolSize: pool, EvictionTime: time.Minute, LeaseLength: f.lease,
		Features: f.features}, ServerKey: f.key.Public().(ed25519.PublicKey)}, nil
}

func (f *fakeServer) Reserve(ctx context.Context, wait time.Duration) (*protocol.Reservation, bool, error) {
	f.mu.Lock()
	f.reserves++
	parks := f.park && f.connected && len(f.queue) == 0
	if parks {
		f.parks++
	}
	f.mu.Unlock()
	if parks {
		return nil, true, nil
	}
	res, err := f.reserve(ctx, wait)
	return res, false, err
}

func (f *fakeServer) reserve(ctx context.Context, wait time.Duration) (*protocol.Reservation, error) {
	if err := ctx.Err(); err != nil {
		return nil, err // as an HTTP call on a cancelled context
	}
	f.mu.Lock()
	hold := f.holdReserve
	f.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return nil, ctx.Err() // the answer, had it come, is lost
		}
	}
	if res, err := f.next(); res != nil || err != nil {
		f.mu.Lock()
		f.polled++
		f.mu.Unlock()
		return res, err
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(wait):
		return nil, nil
	}
}

// next hands out the first queued step, sealed; nil when none is queued.
func (f *fakeServer) next() (*protocol.Reservation, error) {
	f.mu.Lock()
	if len(f.queue) == 0 {
		f.mu.Unlock()
		return nil, nil
	}
	a := f.queue[0]
	f.queue = f.queue[1:]
	f.mu.Unlock()
	plain, _ := json.Marshal(a)
	b := envelope.Binding{AgentID: f.agentID, StepID: a.StepID, Attempt: a.Attempt}
	res := &protocol.Reservation{StepID: a.StepID, Attempt: a.Attempt, LeaseID: a.LeaseID}
	var err error
	if f.sessions != nil {
		res.Sealed, err = f.sessions.Seal(f.agentKey, b, plain)
		res.Envelope = protocol.EnvelopeSession
	} else {
		res.Sealed, err = envelope.Seal(f.key, f.agentKey, b, plain)
	}
	if f.garbage {
		res.Sealed[len(res.Sealed)-1] ^= 1
	}
	return res, err
}

func (f *fakeServer) Events(ctx context.Context, connected func(), handle func(kind string)) error {
	f.mu.Lock()
	f.connected = true
	f.connects++
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.connected = false
		f.mu.Unlock()
	}()
	connected()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-f.drop:
			return errors.New("connection reset")
		case k := <-f.events:
			handle(k) // returns once the Run loop has taken it
			f.mu.Lock()
			f.handled++
			f.mu.Unlock()
		}
	}
}

// hint sends an event on the control channel and waits until the agent's
// Run loop has taken it.
func (f *fakeServer) hint(t *testing.T, kind string) {
	t.Helper()
	f.mu.Lock()
	want := f.handled + 1
	f.mu.Unlock()
	f.events <- kind
	waitFor(t, func() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.handled >= want })
}

// counts returns the fake's Reserve calls, parked answers and control
// channel connections so far.
func (f *fakeServer) counts() (reserves, parks, connects int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reserves, f.parks, f.connects
}

func (f *fakeServer) State(ctx context.Context) (protocol.AgentState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.desired
	if st == "" {
		st = "enabled"
	}
	return protocol.AgentState{State: st}, nil
}

// tell changes what the fake server wants of the agent and hints it.
func (f *fakeServer) tell(state string) {
	f.mu.Lock()
	f.desired = state
	f.mu.Unlock()
	f.events <- "state"
}

// statusError is the server answering with an HTTP status.
type statusError int

func (e statusError) Error() string   { return fmt.Sprintf("server answered %d", int(e)) }
func (e statusError) HTTPStatus() int { return int(e) }
func (e statusError) Refused() bool   { return true }

func (f *fakeServer) RenewLease(ctx context.Context, stepID string, lease protocol.LeaseRequest) (protocol.Lease, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.renewals[stepID]++
	if f.lost[stepID] {
		return protocol.Lease{}, statusError(http.StatusConflict)
	}
	return protocol.Lease{ExpiresAt: time.Now().Add(f.lease), Cancel: f.cancelled[stepID]}, nil
}

func (f *fakeServer) Trigger(ctx context.Context, stepID string, lease protocol.LeaseRequest, runbook string, params map[string]string) (string, error) {
	return "", errors.New("the fake server starts no runs")
}

func (f *fakeServer) AppendLog(ctx context.Context, stepID string, lease protocol.LeaseRequest, offset int64, data []byte, times []protocol.LineTime) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failNext > 0 {
		f.failNext--
		return errors.New("connection reset")
	}
	if got := int64(len(f.logs[stepID])); got != offset {
		return fmt.Errorf("chunk at offset %d, but %d bytes are stored", offset, got)
	}
	for _, lt := range times {
		f.lineTimes[stepID] = append(f.lineTimes[stepID], absLineTime{offset: offset + int64(lt.Offset), at: lt.At})
	}
	f.logs[stepID] = append(f.logs[stepID], data...)
	return nil
}

func (f *fakeServer) Complete(ctx context.Context, stepID string, res protocol.StepResult) (*protocol.Reservation, error) {
	f.mu.Lock()
	if f.plain && (res.Log != nil || res.Next) {
		f.refusedParts++
		f.mu.Unlock()
		return nil, statusError(http.StatusBadRequest) // unknown fields
	}
	if h, ok := f.handed[stepID]; ok {
		// A retried report, as the server answers it: the same next step.
		f.mu.Unlock()
		if !res.Next {
			h = nil
		}
		return h, nil
	}
	if c := res.Log; c != nil {
		if c.Offset != int64(len(f.logs[stepID])) {
			f.mu.Unlock()
			return nil, fmt.Errorf("log chunk at %d, want %d", c.Offset, len(f.logs[stepID]))
		}
		f.logs[stepID] = append(f.logs[stepID], c.Data...)
		f.tails++
	}
	f.results[stepID] = res
	f.mu.Unlock()
	var next *protocol.Reservation
	var err error
	if res.Next {
		next, err = f.next()
	}
	f.completed <- stepID
	f.mu.Lock()
	lose := f.loseAnswers > 0
	if lose {
		f.loseAnswers--
		f.handed[stepID] = next
	}
	f.mu.Unlock()
	if lose {
		return nil, errors.New("connection reset by peer") // recorded; the answer is lost
	}
	return next, err
}

// scriptExecutor prints the command and exits with the code in Env["EXIT"];
// it blocks until release is closed when Env["BLOCK"] is set.
type scriptExecutor struct{ release chan struct{} }

func (e *scriptExecutor) Execute(ctx context.Context, spec StepSpec, out io.Writer) (Outcome, error) {
	fmt.Fprintf(out, "running %s\n", spec.Command)
	if spec.Env["BLOCK"] != "" {
		select {
		case <-e.release:
		case <-ctx.Done():
			return Outcome{ExitCode: -1}, context.Cause(ctx)
		}
	}
	var code int
	fmt.Sscan(spec.Env["EXIT"], &code)
	return Outcome{ExitCode: code, Outputs: []byte(spec.Env["OUTPUTS"])}, nil
}

func testAgent(t *testing.T, srv ServerClient, exec Executor) *Agent {
	t.Helper()
	id, err := LoadOrCreateIdentity(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &Agent{
		Config:   Config{Name: "test", Token: "t", ReserveWait: 50 * time.Millisecond},
		Identity: id, Client: srv, Executor: exec, Logger: slog.New(slog.DiscardHandler),
	}
}

func waitCompleted(t *testing.T, f *fakeServer, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		select {
		case <-f.completed:
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d steps completed", i, n)
		}
	}
}

func TestAgentRunsAndReportsSteps(t *testing.T) {
	t.Parallel()
	f := newFakeServer(
		&protocol.Assignment{StepID: "s1", Attempt: 1, Command: "ok", Env: map[string]string{"EXIT": "0", "OUTPUTS": "version=1.2\nbad line\n"}},
		&protocol.Assignment{StepID: "s2", Attempt: 1, Command: "bad", Env: map[string]string{"EXIT": "3"}},
	)
	runUntilCompleted(t, testAgent(t, f, &scriptExecutor{}), f, 2)
	f.mu.Lock()
	defer f.mu.Unlock()
	if r := f.results["s1"]; r.ExitCode == nil || *r.ExitCode != 0 || r.Attempt != 1 || r.Outputs["version"] != "1.2" || len(r.Outputs) != 1 {
		t.Errorf("s1 result %+v", r)
	}
	if got := string(f.logs["s1"]); got != "running ok\nbaton: $BATON_OUTPUT line 2: want key=value or key<<DELIMITER\nbaton: step ended: succeeded, exit code 0, container none\n" {
		t.Errorf("s1 log %q", got)
	}
	if r := f.results["s2"]; r.ExitCode == nil || *r.ExitCode != 3 {
		t.Errorf("s2 result %+v", r)
	}
	if got := string(f.logs["s2"]); got != "running bad\nbaton: step ended: failed (exit_code), exit code 3, container none\n" {
		t.Errorf("s2 log %q", got)
	}
}

// Shutdown drains: the running step finishes and is reported; nothing new
// is reserved.
func TestAgentShutdownDrainsRunningStep(t *testing.T) {
	t.Parallel()
	f := newFakeServer(&protocol.Assignment{StepID: "long", Attempt: 1, Command: "wait", Env: map[string]string{"BLOCK": "1"}})
	exec := &scriptExecutor{release: make(chan struct{})}
	a := testAgent(t, f, exec)
	states := make(chan State, 10)
	a.OnState = func(s State) { states <- s }
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- a.Run(ctx) }()
	if s := <-states; s != StateReady {
		t.Fatalf("first state %s", s)
	}
	waitFor(t, func() bool { f.mu.Lock(); defer f.mu.Unlock(); return len(f.queue) == 0 })
	cancel()
	if s := <-states; s != StateDraining {
		t.Fatalf("after shutdown: %s, want draining", s)
	}
	f.mu.Lock()
	f.queue = append(f.queue, &protocol.Assignment{StepID: "late", Attempt: 1})
	f.mu.Unlock()
	select {
	case err := <-errc:
		t.Fatalf("Run returned %v while a step was running", err)
	default:
	}
	close(exec.release)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if r, ok := f.results["long"]; !ok || r.ExitCode == nil || *r.ExitCode != 0 {
		t.Errorf("drained step result %+v (reported %v)", r, ok)
	}
	if _, ok := f.results["late"]; ok {
		t.Error("a step was reserved while draining")
	}
}

func TestAgentKeepsRetryingRefusedRegistration(t *testing.T) {
	t.Parallel()
	f := newFakeServer()
	f.refuse = true
	a := testAgent(t, f, &scriptExecutor{})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := a.Run(ctx); err != nil {
		t.Fatalf("Run = %v, want nil: stopping while registering is a clean stop", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	// A refusal backs off for seconds: one attempt in 200 ms, not a busy loop.
	if f.registers != 1 {
		t.Fatalf("%d registration attempts in 200ms", f.registers)
	}
}

func TestLogStreamUploadsEverythingInOrder(t *testing.T) {
	t.Parallel()
	f := newFakeServer()
	f.failNext = 2 // transient failures are retried at the same offset
	s := newLogStream(context.Background(), f, "step", protocol.LeaseRequest{Attempt: 1, LeaseID: "L"}, slog.New(slog.DiscardHandler))
	var want bytes.Buffer
	r := mrand.New(mrand.NewPCG(1, 2))
	for i := 0; i < 2000; i++ {
		chunk := make([]byte, r.IntN(3000))
		for j := range chunk {
			chunk[j] = byte('a' + r.IntN(26))
		}
		want.Write(chunk)
		s.Write(chunk)
	}
	s.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	if !bytes.Equal(f.logs["step"], want.Bytes()) {
		t.Fatalf("uploaded %d bytes, want %d identical bytes", len(f.logs["step"]), want.Len())
	}
}

// runUntilCompleted runs the agent until the fake has n results, then
// stops it and checks that Run returned cleanly.
func runUntilCompleted(t *testing.T, a *Agent, f *fakeServer, n int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- a.Run(ctx) }()
	waitCompleted(t, f, n)
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A reservation that does not open is reported as rejected and never run.
func TestAgentRejectsTamperedReservation(t *testing.T) {
	t.Parallel()
	f := newFakeServer(&protocol.Assignment{StepID: "evil", Attempt: 1, Command: "rm -rf /"})
	f.garbage = true
	exec := &recordingExecutor{}
	if r := runOnce(t, f, "", exec, "evil"); r.Reason != engine.ReasonPayloadRejected || r.ExitCode != nil || r.Attempt != 1 {
		t.Errorf("result %+v, want payload_rejected", r)
	}
	if exec.calls.Load() != 0 {
		t.Error("a rejected payload was run")
	}
}

// A current server seals in the agent's session: the agent opens it, and
// refuses a session payload that was tampered with or of an unknown form.
func TestAgentOpensSessionEnvelopes(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		garbage bool
		want    engine.Reason
	}{{"sealed in the session", false, ""}, {"tampered", true, engine.ReasonPayloadRejected}} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeServer(&protocol.Assignment{StepID: "s", Attempt: 1, Command: "true"})
			f.sessions = envelope.NewSessions(f.key)
			f.garbage = c.garbage
			exec := &recordingExecutor{}
			r := runOnce(t, f, "", exec, "s")
			if r.Reason != c.want {
				t.Errorf("result %+v, want reason %q", r, c.want)
			}
			if ran := exec.calls.Load() == 1; ran == c.garbage {
				t.Errorf("ran %t, want %t", ran, !c.garbage)
			}
		})
	}
}

type recordingExecutor struct{ calls atomic.Int32 }

func (e *recordingExecutor) Execute(ctx context.Context, spec StepSpec, out io.Writer) (Outcome, error) {
	e.calls.Add(1)
	return Outcome{}, nil
}

// Disable stops reservations and keeps running steps; enable resumes;
// delete cancels what runs, reports it and wipes the state dir.
func TestAgentFollowsTheServer(t *testing.T) {
	t.Parallel()
	f := newFakeServer(&protocol.Assignment{StepID: "long", Attempt: 1, Env: map[string]string{"BLOCK": "1"}})
	exec := &scriptExecutor{release: make(chan struct{})}
	a := testAgent(t, f, exec)
	stateDir := t.TempDir()
	a.Config.StateDir = stateDir
	states := make(chan State, 20)
	a.OnState = func(s State) { states <- s }
	errc := make(chan error, 1)
	go func() { errc <- a.Run(context.Background()) }()
	want := func(s State) {
		t.Helper()
		select {
		case got := <-states:
			if got != s {
				t.Fatalf("state %s, want %s", got, s)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no state change; want %s", s)
		}
	}
	want(StateReady)
	waitFor(t, func() bool { f.mu.Lock(); defer f.mu.Unlock(); return len(f.queue) == 0 })
	f.tell("disabled")
	want(StateDisabled)
	f.mu.Lock()
	f.queue = append(f.queue, &protocol.Assignment{StepID: "queued", Attempt: 1})
	f.mu.Unlock()
	f.tell("enabled")
	want(StateReady)
	waitCompleted(t, f, 1) // "queued" ran once enabled
	f.tell("deleted")
	want(StateDeleting)
	want(StateStopped)
	if err := <-errc; !errors.Is(err, ErrDeleted) {
		t.Fatalf("Run = %v, want ErrDeleted", err)
	}
	waitCompleted(t, f, 1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if r := f.results["long"]; r.Reason != engine.ReasonCancelled {
		t.Errorf("the running step ended %+v, want cancelled", r)
	}
	if _, err := os.Stat(stateDir); !os.IsNotExist(err) {
		t.Errorf("state dir still there: %v", err)
	}
}

// A step the server reserved just before disabling the agent reaches it
// in the answer to a poll it holds: the agent, disabled meanwhile, still
// takes it (dropping the answer would strand the step until its lease
// lapsed), and takes nothing more.
func TestDisabledAgentTakesTheStepAlreadyOnItsWay(t *testing.T) {
	t.Parallel()
	f := newFakeServer()
	f.holdReserve = make(chan struct{})
	a := testAgent(t, f, &scriptExecutor{})
	states := make(chan State, 20)
	a.OnState = func(s State) { states <- s }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.Run(ctx)
	want := func(s State) {
		t.Helper()
		for {
			select {
			case got := <-states:
				if got == s {
					return
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no state %s", s)
			}
		}
	}
	want(StateReady)
	waitFor(t, func() bool { r, _, _ := f.counts(); return r > 0 }) // a poll is held
	f.tell("disabled")
	want(StateDisabled)
	f.mu.Lock()
	f.queue = append(f.queue, &protocol.Assignment{StepID: "on-its-way", Attempt: 1})
	f.mu.Unlock()
	close(f.holdReserve) // the held poll is answered now, after the disable
	waitCompleted(t, f, 1)
	f.mu.Lock()
	f.queue = append(f.queue, &protocol.Assignment{StepID: "later", Attempt: 1})
	f.mu.Unlock()
	// Nothing to wait for: the step must not be taken. An enabled agent
	// polls every ReserveWait (50 ms); this is six of them.
	time.Sleep(300 * time.Millisecond)
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ran := f.results["later"]; ran || len(f.queue) != 1 {
		t.Errorf("the disabled agent took another step (queue %d)", len(f.queue))
	}
}

// A cancel hint on the control channel makes the agent renew its leases at
// once; the server's answer (cancel) stops the step, reported cancelled.
// The lease is a minute long, so only the hint can explain a quick stop.
func TestAgentStopsStepWhenTheServerCancelsIt(t *testing.T) {
	t.Parallel()
	f := newFakeServer(&protocol.Assignment{StepID: "long", Attempt: 1, LeaseID: "L1", Command: "wait", Env: map[string]string{"BLOCK": "1"}})
	exec := &scriptExecutor{release: make(chan struct{})}
	defer close(exec.release)
	a := testAgent(t, f, exec)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.Run(ctx)
	waitFor(t, func() bool { f.mu.Lock(); defer f.mu.Unlock(); return len(f.logs["long"]) > 0 })
	f.mu.Lock()
	f.cancelled["long"] = true
	f.mu.Unlock()
	f.events <- "cancel"
	start := time.Now()
	waitCompleted(t, f, 1)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("cancel took %s", took)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if r := f.results["long"]; r.Reason != engine.ReasonCancelled || r.LeaseID != "L1" || r.Attempt != 1 {
		t.Errorf("result %+v, want reason cancelled under lease L1", r)
	}
}

// The agent renews its lease every third of the lease length, and stops a
// step whose lease the server no longer recognises (409).
func TestAgentRenewsLeaseAndStopsWhenLost(t *testing.T) {
	t.Parallel()
	f := newFakeServer(&protocol.Assignment{StepID: "long", Attempt: 1, LeaseID: "L1", Command: "wait", Env: map[string]string{"BLOCK": "1"}})
	f.lease = 300 * time.Millisecond
	exec := &scriptExecutor{release: make(chan struct{})}
	defer close(exec.release)
	a := testAgent(t, f, exec)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.Run(ctx)
	waitFor(t, func() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.renewals["long"] >= 3 })
	select {
	case id := <-f.completed:
		t.Fatalf("step %s ended while its lease was renewed", id)
	default:
	}
	f.mu.Lock()
	f.lost["long"] = true
	f.mu.Unlock()
	waitCompleted(t, f, 1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if r := f.results["long"]; r.Reason != engine.ReasonCancelled || !strings.Contains(r.Error, "lease was lost") {
		t.Errorf("result %+v, want cancelled because the lease was lost", r)
	}
}

// Every line of a step's log gets the time it was written (to the 10 ms
// grain), also across chunks.
func TestLogStreamTimestampsLines(t *testing.T) {
	t.Parallel()
	f := newFakeServer()
	s := newLogStream(context.Background(), f, "step", protocol.LeaseRequest{Attempt: 1, LeaseID: "L"}, slog.New(slog.DiscardHandler))
	type line struct {
		offset int64
		at     time.Time
	}
	var lines []line
	var off int64
	for i, pause := range []time.Duration{0, 50 * time.Millisecond, 300 * time.Millisecond, 0, 30 * time.Millisecond} {
		time.Sleep(pause)
		text := fmt.Sprintf("line %d\n", i)
		lines = append(lines, line{off, time.Now()})
		s.Write([]byte(text[:3])) // a line may arrive in pieces
		s.Write([]byte(text[3:]))
		off += int64(len(text))
	}
	s.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	times := f.lineTimes["step"]
	for i, l := range lines {
		var at int64
		for _, lt := range times {
			if lt.offset <= l.offset {
				at = lt.at
			}
		}
		if d := time.UnixMilli(at).Sub(l.at); d < -15*time.Millisecond || d > 15*time.Millisecond {
			t.Errorf("line %d stamped %s from when it was written (times %+v)", i, d, times)
		}
	}
}

// idleWhileParked has the agent's Run loop take a round of pings (each
// one a turn of the loop, in which an agent that was not parked would poll)
// and checks that it did not poll meanwhile.
func idleWhileParked(t *testing.T, f *fakeServer) {
	t.Helper()
	before, _, _ := f.counts()
	for range 20 {
		f.hint(t, "ping")
	}
	if after, _, _ := f.counts(); after != before {
		t.Fatalf("a parked agent polled %d times without a work hint", after-before)
	}
}

// parkedAgent runs an agent against a fake that parks it, until the test
// ends, and returns the fake once the agent is parked and stays so.
func parkedAgent(t *testing.T) *fakeServer {
	t.Helper()
	f := newFakeServer()
	f.park = true
	a := testAgent(t, f, &scriptExecutor{})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go a.Run(ctx)
	waitFor(t, func() bool { _, parks, _ := f.counts(); return parks >= 1 })
	idleWhileParked(t, f)
	return f
}

// A parked agent does not poll again until a work hint comes on its
// control channel; then it polls, and takes the step that is there.
func TestParkedAgentWaitsForWorkHint(t *testing.T) {
	t.Parallel()
	f := parkedAgent(t)

	f.hint(t, "work")
	waitFor(t, func() bool { _, parks, _ := f.counts(); return parks >= 2 })
	idleWhileParked(t, f) // parked again: nothing was there

	f.mu.Lock()
	f.queue = append(f.queue, &protocol.Assignment{StepID: "s1", Attempt: 1, Command: "ok"})
	f.mu.Unlock()
	f.hint(t, "work")
	waitCompleted(t, f, 1)
	waitFor(t, func() bool { _, parks, _ := f.counts(); return parks == 3 })
	if reserves, _, _ := f.counts(); reserves != 4 {
		t.Errorf("%d polls, want 4: three parked, one that took s1", reserves)
	}
}

// A parked agent whose control channel drops polls again (hints went to
// the old channel), and parks again once the channel is back.
func TestParkedAgentPollsWhenControlChannelReconnects(t *testing.T) {
	t.Parallel()
	f := parkedAgent(t)
	reserves, _, _ := f.counts()

	f.drop <- struct{}{}
	waitFor(t, func() bool { _, parks, connects := f.counts(); return connects == 2 && parks >= 2 })
	if now, _, _ := f.counts(); now <= reserves {
		t.Fatalf("no poll after the control channel came back (%d polls before, %d after)", reserves, now)
	}
	// The state checks of the reconnect may unpark it once more; then it
	// stays parked.
	deadline := time.Now().Add(10 * time.Second)
	for {
		before, _, _ := f.counts()
		for range 20 {
			f.hint(t, "ping")
		}
		if after, _, _ := f.counts(); after == before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the agent kept polling after the control channel came back: it did not park again")
		}
	}
}

// With the server's features, a step's last log chunk comes with its
// result, and the next step comes back in the answer: one poll for three
// steps, every log complete and in order.
func TestAgentTakesNextStepWithResult(t *testing.T) {
	t.Parallel()
	f := newFakeServer(
		&protocol.Assignment{StepID: "s1", Attempt: 1, Command: "one", Env: map[string]string{"EXIT": "0"}},
		&protocol.Assignment{StepID: "s2", Attempt: 1, Command: "two", Env: map[string]string{"EXIT": "4"}},
		&protocol.Assignment{StepID: "s3", Attempt: 1, Command: "three", Env: map[string]string{"EXIT": "0"}},
	)
	f.features = []string{protocol.FeatureCompleteLog, protocol.FeatureCompleteNext}
	f.pool = 1
	runUntilCompleted(t, testAgent(t, f, &scriptExecutor{}), f, 3)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.polled != 1 || f.tails != 3 {
		t.Errorf("%d steps came from polls and %d logs with results; want 1 and 3", f.polled, f.tails)
	}
	for id, want := range map[string]string{
		"s1": "running one\nbaton: step ended: succeeded, exit code 0, container none\n",
		"s2": "running two\nbaton: step ended: failed (exit_code), exit code 4, container none\n",
		"s3": "running three\nbaton: step ended: succeeded, exit code 0, container none\n",
	} {
		if got := string(f.logs[id]); got != want {
			t.Errorf("%s log %q, want %q", id, got, want)
		}
		if r := f.results[id]; r.Log == nil || r.Log.Times == "" {
			t.Errorf("%s result carries no log chunk with line times: %+v", id, r.Log)
		}
	}
}

// A server that refuses the result's optional parts (another replica, not
// yet upgraded, though one announced them) still gets every result and
// every byte of output, the plain way.
func TestAgentReportsPlainlyWhenOptionalPartsAreRefused(t *testing.T) {
	t.Parallel()
	f := newFakeServer(
		&protocol.Assignment{StepID: "s1", Attempt: 1, Command: "one", Env: map[string]string{"EXIT": "0"}},
		&protocol.Assignment{StepID: "s2", Attempt: 1, Command: "two", Env: map[string]string{"EXIT": "5"}},
	)
	f.features = []string{protocol.FeatureCompleteLog, protocol.FeatureCompleteNext}
	f.plain = true
	runUntilCompleted(t, testAgent(t, f, &scriptExecutor{}), f, 2)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refusedParts != 2 {
		t.Errorf("%d reports refused for their optional parts, want 2", f.refusedParts)
	}
	if r := f.results["s2"]; r.ExitCode == nil || *r.ExitCode != 5 || r.Log != nil || r.Next {
		t.Errorf("s2 result %+v", r)
	}
	if got, want := string(f.logs["s2"]), "running two\nbaton: step ended: failed (exit_code), exit code 5, container none\n"; got != want {
		t.Errorf("s2 log %q, want %q", got, want)
	}
}

// A report whose answer is lost is retried; the next step that answer
// carried comes with the retry, and runs once.
func TestAgentGetsNextStepWhenItsReportIsRetried(t *testing.T) {
	t.Parallel()
	f := newFakeServer(
		&protocol.Assignment{StepID: "s1", Attempt: 1, Command: "one", Env: map[string]string{"EXIT": "0"}},
		&protocol.Assignment{StepID: "s2", Attempt: 1, Command: "two", Env: map[string]string{"EXIT": "0"}},
	)
	f.features = []string{protocol.FeatureCompleteLog, protocol.FeatureCompleteNext}
	f.pool = 1
	f.loseAnswers = 1
	runUntilCompleted(t, testAgent(t, f, &scriptExecutor{}), f, 2)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.polled != 1 {
		t.Errorf("%d steps came from polls, want 1 (s2 came with the retried report)", f.polled)
	}
	if got, want := string(f.logs["s2"]), "running two\nbaton: step ended: succeeded, exit code 0, container none\n"; got != want {
		t.Errorf("s2 log %q, want %q (it ran once)", got, want)
	}
}
