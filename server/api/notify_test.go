package api_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-ci/baton/shared/protocol"
)

// Run and step state changes are POSTed, signed, to the project's notify
// URL; a receiver that fails gets the notification again.
func TestNotifications(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	const secret = "notify-secret-0123456789"
	var mu sync.Mutex
	var got []string
	failed := false
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		if r.Header.Get("X-Baton-Signature-256") != "sha256="+hex.EncodeToString(mac.Sum(nil)) || r.Header.Get("X-Baton-Delivery") == "" {
			t.Errorf("bad signature on %s", body)
		}
		mu.Lock()
		defer mu.Unlock()
		if !failed {
			failed = true
			http.Error(w, "not now", http.StatusServiceUnavailable)
			return
		}
		var e struct{ Kind, Step, State string }
		json.Unmarshal(body, &e)
		got = append(got, e.Kind+" "+e.Step+" "+e.State)
	}))
	defer recv.Close()
	wantStatus(t, "notify url", ts.admin(t, "PUT", "/api/v1/projects/chat", map[string]string{"notify_url": recv.URL}), 200)
	wantStatus(t, "bad notify url", ts.admin(t, "PUT", "/api/v1/projects/chat", map[string]string{"notify_url": "ftp://x"}), 400)
	wantStatus(t, "notify secret", ts.admin(t, "PUT", "/api/v1/projects/chat/notify-secret", map[string]string{"value": secret}), 204)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ts.srv.SendNotifications(ctx, recv.Client())
	agent := ts.newAgent(t, "notifier")
	ts.createRun(t, "chat", "steps:\n  - name: build\n    command: x\n")
	as := agent.reserveStep(t, ts, "build")
	wantStatus(t, "complete", agent.complete(t, ts, as.StepID, protocol.StepResult{Attempt: 1, ExitCode: new(0)}), http.StatusNoContent)
	want := "run  running|step build running|step build succeeded|run  succeeded"
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 4 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	// The first attempt of the first notification failed: it came again,
	// possibly after the others.
	joined := "|" + strings.Join(got, "|") + "|"
	for _, w := range strings.Split(want, "|") {
		if strings.Count(joined, "|"+w+"|") != 1 {
			t.Errorf("notifications %q: want %q once", got, w)
		}
	}
}
