package rpc

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-ci/baton/shared/protocol"
)

// A PUT refused with 401 before its body was read is sent again with a
// fresh token; the body arrives whole, once. A refusal after reading is
// not retried.
func TestPutArtifactRetriesUnreadBodyOnce(t *testing.T) {
	t.Parallel()
	var tokens, puts atomic.Int32
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == protocol.PathToken:
			n := tokens.Add(1)
			json.NewEncoder(w).Encode(protocol.TokenResponse{Token: "t" + string(rune('0'+n)), ExpiresAt: time.Now().Add(time.Hour)})
		case strings.HasSuffix(r.URL.Path, "/artifacts/dist/a.bin"):
			if r.URL.Query().Get("attempt") != "2" || r.URL.Query().Get("lease") != "L" || r.Header.Get(protocol.HeaderSHA256) != "abc" {
				http.Error(w, "bad request "+r.URL.RawQuery, 400)
				return
			}
			puts.Add(1)
			if r.Header.Get("Authorization") == "Bearer t1" {
				http.Error(w, `{"error":"token expired"}`, http.StatusUnauthorized) // body not read
				return
			}
			b, _ := io.ReadAll(r.Body)
			got = string(b)
			w.WriteHeader(http.StatusCreated)
			json.NewEncoder(w).Encode(protocol.Artifact{Key: "dist/a.bin", Size: int64(len(b))})
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	c, err := New(srv.URL, "agent", key)
	if err != nil {
		t.Fatal(err)
	}
	body := strings.Repeat("payload ", 100_000)
	a, err := c.PutArtifact(t.Context(), "step", protocol.LeaseRequest{Attempt: 2, LeaseID: "L"}, "dist/a.bin", strings.NewReader(body), int64(len(body)), "abc")
	if err != nil || a.Size != int64(len(body)) || got != body {
		t.Fatalf("PutArtifact = %+v, %v; server got %d bytes", a, err, len(got))
	}
	if puts.Load() != 2 || tokens.Load() != 2 {
		t.Errorf("%d puts and %d tokens, want 2 and 2", puts.Load(), tokens.Load())
	}
	if _, err := c.PutArtifact(t.Context(), "step", protocol.LeaseRequest{Attempt: 2, LeaseID: "L"}, "../a", strings.NewReader("x"), 1, ""); err == nil {
		t.Error("a bad key was sent")
	}
	_, _, err = c.GetArtifact(t.Context(), "step", protocol.LeaseRequest{Attempt: 2, LeaseID: "L"}, "missing")
	if e, ok := err.(*Error); !ok || e.Status != 404 {
		t.Errorf("GetArtifact(missing) = %v, want a 404 Error", err)
	}
}
