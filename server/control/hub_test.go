package control_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-ci/baton/server/control"
)

// newHub serves a hub's streams on a test server, both closed when the
// test ends; ?agent= names the agent.
func newHub(t *testing.T, writeTimeout time.Duration) (*control.Hub, *httptest.Server) {
	t.Helper()
	hub := control.New(writeTimeout, slog.New(slog.DiscardHandler))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hub.Serve(w, r, r.URL.Query().Get("agent"))
	}))
	t.Cleanup(func() { srv.Close(); hub.Close() })
	return hub, srv
}

// listen opens an agent's stream and reports each event kind it reads.
func listen(ctx context.Context, t *testing.T, url string, got chan<- string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("connect %s: %v", url, err)
		return
	}
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if kind, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
				got <- kind
			}
		}
	}()
}

// A subscriber that never reads does not delay hints to 100 other agents.
func TestStalledSubscriberDoesNotDelayOthers(t *testing.T) {
	t.Parallel()
	hub := control.New(200*time.Millisecond, slog.New(slog.DiscardHandler))
	defer hub.Close()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hub.Serve(w, r, r.URL.Query().Get("agent"))
	}))
	// Small socket buffers, so that the stalled agent's fill quickly.
	srv.Listener = smallBuffers{srv.Listener}
	srv.Start()
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The stalled agent: connects, then never reads a byte.
	stalled, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	stalled.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(stalled, "GET /?agent=stalled HTTP/1.1\r\nHost: x\r\n\r\n")

	const n = 100
	got := make([]chan string, n)
	for i := range got {
		got[i] = make(chan string, 16)
		listen(ctx, t, fmt.Sprintf("%s/?agent=a%d", srv.URL, i), got[i])
	}
	deadline := time.Now().Add(10 * time.Second)
	for !hub.Connected("stalled") || !hub.Connected(fmt.Sprintf("a%d", n-1)) {
		if time.Now().After(deadline) {
			t.Fatal("agents did not connect")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Fill the stalled agent's socket buffers: distinct hints, 1 KiB each.
	big := strings.Repeat("x", 1024)
	for i := 0; i < 20000; i++ {
		hub.Notify("stalled", fmt.Sprint(i, big))
	}

	start := time.Now()
	for i := 0; i < n; i++ {
		hub.Notify(fmt.Sprintf("a%d", i), control.EventState)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var slowest time.Duration
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			select {
			case kind := <-got[i]:
				if kind != control.EventState {
					t.Errorf("agent %d got %q", i, kind)
				}
				mu.Lock()
				slowest = max(slowest, time.Since(start))
				mu.Unlock()
			case <-time.After(5 * time.Second):
				t.Errorf("agent %d got nothing", i)
			}
		}(i)
	}
	wg.Wait()
	t.Logf("100 agents heard the hint within %s while one agent was stalled", slowest)
	if slowest > 100*time.Millisecond {
		t.Errorf("slowest delivery %s; a stalled agent must not delay the others by more than 100 ms", slowest)
	}
	// Its write times out and the stream is dropped. Hints that find its
	// queue full are dropped, so how much of the above reached the socket
	// depends on timing: keep hinting until a write blocks.
	deadline = time.Now().Add(10 * time.Second)
	for i := 0; hub.Connected("stalled"); i++ {
		if time.Now().After(deadline) {
			t.Fatal("the stalled agent's stream is still open")
		}
		hub.Notify("stalled", fmt.Sprint("more", i, big))
		if i%32 == 31 {
			time.Sleep(time.Millisecond)
		}
	}
	if !hub.Connected("a0") {
		t.Error("a listening agent was dropped")
	}
}

// smallBuffers gives every accepted connection a small send buffer.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(4096)
	}
	return c, err
}

// An agent that hangs up is dropped at the next ping round, though its
// stream is never read.
func TestHungUpAgentIsDropped(t *testing.T) {
	t.Parallel()
	hub, srv := newHub(t, time.Second)
	stop := make(chan struct{})
	defer close(stop)
	go hub.Ping(20*time.Millisecond, stop)

	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan string, 16)
	listen(ctx, t, srv.URL+"/?agent=gone", got)
	waitUntil(t, func() bool { return hub.Connected("gone") }, "the agent to connect")
	if kind := <-got; kind != control.EventPing {
		t.Errorf("got %q, want a ping", kind)
	}
	cancel()
	waitUntil(t, func() bool { return !hub.Connected("gone") }, "the hung-up agent to be dropped")
	if n := hub.Streams(); n != 0 {
		t.Errorf("%d streams open, want 0", n)
	}
}

// Asked whether an agent is connected, the hub looks: an agent that hung
// up is not, with no ping round between.
func TestConnectedNoticesAHangUpAtOnce(t *testing.T) {
	t.Parallel()
	hub, srv := newHub(t, time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	listen(ctx, t, srv.URL+"/?agent=gone", make(chan string, 16))
	waitUntil(t, func() bool { return hub.Connected("gone") }, "the agent to connect")
	cancel()
	// The client's close reaches the server's socket within moments; no
	// ping runs in this test, so only Connected's own look can drop it.
	waitUntil(t, func() bool { return !hub.Connected("gone") }, "Connected to notice the hang-up")
	if n := hub.Streams(); n != 0 {
		t.Errorf("%d streams open, want 0", n)
	}
}

// Over HTTP/2 (h2c) the stream cannot be taken over: its handler holds it,
// delivers hints, and ends when the agent hangs up.
func TestHTTP2StreamIsHeldByItsHandler(t *testing.T) {
	t.Parallel()
	hub := control.New(time.Second, slog.New(slog.DiscardHandler))
	defer hub.Close()
	protos := &http.Protocols{}
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			t.Errorf("request over %s, want HTTP/2", r.Proto)
		}
		hub.Serve(w, r, r.URL.Query().Get("agent"))
	}))
	srv.Config.Protocols = protos
	srv.Start()
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{Protocols: &http.Protocols{}}}
	client.Transport.(*http.Transport).Protocols.SetUnencryptedHTTP2(true)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/?agent=h2", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("answered over %s with %q", resp.Proto, resp.Header.Get("Content-Type"))
	}
	waitUntil(t, func() bool { return hub.Connected("h2") }, "the agent to connect")
	hub.Deliver("h2", control.EventWork)
	sc := bufio.NewScanner(resp.Body)
	var lines []string
	for len(lines) < 2 && sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if fmt.Sprint(lines) != "[event: work data: work]" {
		t.Errorf("read %q", lines)
	}
	cancel()
	waitUntil(t, func() bool { return !hub.Connected("h2") }, "the stream to end")
}

func waitUntil(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Notify passes every hint to the broadcast hook (the agent may be connected
// to another replica), connected here or not; Deliver, for hints from other
// replicas, only reaches agents connected here.
func TestNotifyBroadcastsDeliverDoesNot(t *testing.T) {
	t.Parallel()
	hub, srv := newHub(t, time.Second)
	var mu sync.Mutex
	var sent []string
	hub.SetBroadcast(func(agentIDs []string, kind string) {
		agentID := strings.Join(agentIDs, ",")
		mu.Lock()
		defer mu.Unlock()
		sent = append(sent, agentID+" "+kind)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make(chan string, 4)
	listen(ctx, t, srv.URL+"/?agent=here", got)
	for !hub.Connected("here") {
		if ctx.Err() != nil {
			t.Fatal("agent did not connect")
		}
		time.Sleep(10 * time.Millisecond)
	}

	hub.Notify("elsewhere", control.EventDisable)
	hub.Deliver("here", control.EventCancel)
	select {
	case kind := <-got:
		if kind != control.EventCancel {
			t.Errorf("delivered %q, want %q", kind, control.EventCancel)
		}
	case <-ctx.Done():
		t.Fatal("Deliver reached nobody")
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(sent) != "[elsewhere disable]" {
		t.Errorf("broadcast %q, want only the Notify", sent)
	}
}
