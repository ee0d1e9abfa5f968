package rpc_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/baton-ci/baton/agent/rpc"
	"github.com/baton-ci/baton/shared/protocol"
)

// With UseH2C the control stream and the calls share one HTTP/2
// connection to an http:// server; without it they are HTTP/1.1.
func TestUseH2C(t *testing.T) {
	for _, h2c := range []bool{true, false} {
		t.Run(fmt.Sprintf("h2c=%t", h2c), func(t *testing.T) {
			var mu sync.Mutex
			protos := map[string]int{}
			conns := 0
			mux := http.NewServeMux()
			mux.HandleFunc("POST "+protocol.PathToken, func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				protos[r.Proto]++
				mu.Unlock()
				fmt.Fprintf(w, `{"token":"t","expires_at":%q}`, time.Now().Add(10*time.Minute).Format(time.RFC3339))
			})
			mux.HandleFunc("GET "+protocol.PathEvents, func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				protos[r.Proto]++
				mu.Unlock()
				w.Header().Set("Content-Type", "text/event-stream")
				fmt.Fprint(w, "event: ping\ndata: ping\n\n")
				w.(http.Flusher).Flush()
				<-r.Context().Done()
			})
			mux.HandleFunc("GET "+protocol.PathAgentState, func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				protos[r.Proto]++
				mu.Unlock()
				fmt.Fprint(w, `{"state":"enabled","config":{"pool_size":1}}`)
			})
			srv := httptest.NewUnstartedServer(mux)
			srv.Config.Protocols = new(http.Protocols)
			srv.Config.Protocols.SetHTTP1(true)
			srv.Config.Protocols.SetUnencryptedHTTP2(true)
			srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					mu.Lock()
					conns++
					mu.Unlock()
				}
			}
			srv.Start()
			defer srv.Close()

			_, key, _ := ed25519.GenerateKey(rand.Reader)
			c, err := rpc.New(srv.URL, "agent-1", key)
			if err != nil {
				t.Fatal(err)
			}
			if h2c {
				c.UseH2C()
			}
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			heard := make(chan string, 1)
			up := make(chan struct{})
			go c.Events(ctx, func() { close(up) }, func(kind string) {
				select {
				case heard <- kind:
				default:
				}
			})
			select {
			case kind := <-heard:
				if kind != "ping" {
					t.Fatalf("heard %q", kind)
				}
			case <-ctx.Done():
				t.Fatal("no event on the control stream")
			}
			for range 3 { // while the stream is open
				if _, err := c.State(ctx); err != nil {
					t.Fatal(err)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			want := "HTTP/1.1"
			if h2c {
				want = "HTTP/2.0"
			}
			if len(protos) != 1 || protos[want] != 5 {
				t.Errorf("requests by protocol %v, want 5 %s", protos, want)
			}
			if h2c && conns != 1 {
				t.Errorf("%d connections, want one for the stream and the calls", conns)
			}
			if !h2c && conns < 2 {
				t.Errorf("%d connections over HTTP/1.1, want the stream's and the calls'", conns)
			}
		})
	}
}
