package rpc

import (
	"context"
	"net/http"
	"time"

	"github.com/r3labs/sse/v2"
	"gopkg.in/cenkalti/backoff.v1"

	"github.com/baton-ci/baton/shared/protocol"
)

// Events holds the agent's control channel (server-sent events) open and
// calls handle with each event's kind, after calling connected once the
// server accepted it. It returns when the stream ends or ctx is done; the
// caller reconnects (r3labs' own reconnect is switched off: it ignores the
// context while retrying and gives up silently).
func (c *Client) Events(ctx context.Context, connected func(), handle func(kind string)) error {
	sc := sse.NewClient(c.base.String() + protocol.PathEvents)
	sc.Connection = &http.Client{Transport: &bearerTransport{c: c, next: c.http.Transport}}
	sc.ReconnectStrategy = backoff.WithContext(&backoff.StopBackOff{}, ctx)
	sc.ResponseValidator = func(_ *sse.Client, resp *http.Response) error {
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized {
				c.dropToken() // the next attempt signs for a fresh one
			}
			return &Error{Status: resp.StatusCode, Message: "control channel refused"}
		}
		connected()
		return nil
	}
	return sc.SubscribeRawWithContext(ctx, func(ev *sse.Event) { handle(string(ev.Event)) })
}

// State asks the server what it wants of the agent.
func (c *Client) State(ctx context.Context) (protocol.AgentState, error) {
	// A server that does not answer must not hold the agent's health
	// check: the agent goes Idle and asks again.
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// State checks come after hints, at most a few a minute: the
	// connection is closed after the answer rather than kept idle, so an
	// idle agent holds only its control channel (a fleet command has every
	// agent check at once).
	ctx = context.WithValue(ctx, closeAfterKey{}, true)
	var st protocol.AgentState
	_, err := c.authed(ctx, http.MethodGet, protocol.PathAgentState, nil, "", &st)
	return st, err
}

// bearerTransport puts a fresh access token on every (re)connection.
type bearerTransport struct {
	c    *Client
	next http.RoundTripper
}

func (t *bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	token, err := t.c.accessToken(r.Context(), false)
	if err != nil {
		return nil, err
	}
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+token)
	return t.next.RoundTrip(r)
}

func (c *Client) dropToken() {
	c.mu.Lock()
	c.token = ""
	c.mu.Unlock()
}
