package agent_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-ci/baton/agent"
	"github.com/baton-ci/baton/agent/internal/syncbuf"
	"github.com/baton-ci/baton/agent/rpc"
	"github.com/baton-ci/baton/shared/protocol"
)

// A server that refuses the agent's protocol (426) gets a clear log line
// and slow retries, through the real HTTP client; the agent neither exits
// nor spins, and it sends its protocol version.
func TestAgentRefusedForItsProtocol(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var sent []int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req protocol.RegisterRequest
		json.NewDecoder(r.Body).Decode(&req)
		mu.Lock()
		sent = append(sent, req.Protocol)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUpgradeRequired)
		json.NewEncoder(w).Encode(protocol.Error{Error: "agent protocol 1 is too old: this server speaks agent protocol 2 (accepts 2 to 2); upgrade the agent (baton-agent)"})
	}))
	t.Cleanup(srv.Close)
	id, err := agent.LoadOrCreateIdentity(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	client, err := rpc.New(srv.URL, id.ID, id.Signing)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncbuf.Buffer
	a := &agent.Agent{
		Config:   agent.Config{Name: "old", Version: "v0.1.0", Token: "t", ReserveWait: time.Second},
		Identity: id, Client: client, Executor: nil, Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	if err := a.Run(ctx); err != nil {
		t.Fatalf("Run = %v, want nil: an agent refused for its version waits, it does not crash", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sent) != 1 || sent[0] != protocol.ProtocolVersion {
		t.Errorf("registrations sent protocols %v; want one attempt (the retry waits seconds) with %d", sent, protocol.ProtocolVersion)
	}
	out := logs.String()
	for _, want := range []string{`"level":"ERROR"`, "upgrade the agent", `"agent_protocol":1`, `"retry_in":`, "426"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
}
