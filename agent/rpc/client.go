// Package rpc is the agent's HTTP client for the server's agent API. It
// obtains short-lived access tokens by signing with the agent's key and
// renews them before they expire or when the server rejects one.
package rpc

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/baton-ci/baton/shared/protocol"
)

// Client talks to one Baton server.
type Client struct {
	base    *url.URL
	http    *http.Client
	agentID string
	key     ed25519.PrivateKey

	h2c bool // UseH2C was called

	mu      sync.Mutex
	token   string
	expires time.Time
}

// New returns a client for the server at serverURL acting as agentID.
func New(serverURL, agentID string, key ed25519.PrivateKey) (*Client, error) {
	u, err := url.Parse(strings.TrimSuffix(serverURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server URL %q: want http(s)://host[:port]", serverURL)
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	// An idle agent keeps one connection to the server, its control
	// channel (it parks instead of holding a poll): spare connections of
	// earlier calls close soon.
	t.IdleConnTimeout = 5 * time.Second
	return &Client{
		base: u,
		// No overall timeout: reserve long-polls; each call sets its own deadline.
		http:    &http.Client{Transport: t},
		agentID: agentID,
		key:     key,
	}, nil
}

// UseH2C makes the client speak HTTP/2 without TLS (h2c, prior knowledge)
// to an http:// server, so the control stream, the reserve long-poll and
// every call share one connection: a third of the descriptors and fewer
// goroutines and buffers on the server per agent. The path to the server
// must pass h2c (a direct connection, a TCP load balancer, or a proxy
// configured for it). https:// servers negotiate HTTP/2 anyway (ALPN).
// Call it before the client is used.
func (c *Client) UseH2C() {
	if c.base.Scheme != "http" {
		return
	}
	c.h2c = true
	t := c.http.Transport.(*http.Transport)
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	t.Protocols = &p
	// A connection that silently died would hold every stream: ping it
	// when it has been quiet, and drop it when the ping goes unanswered.
	t.HTTP2 = &http.HTTP2Config{SendPingTimeout: 15 * time.Second, PingTimeout: 10 * time.Second}
}

// Error is a non-2xx answer from the server.
type Error struct {
	Status  int
	Message string
	Details []string
}

func (e *Error) Error() string {
	return fmt.Sprintf("server answered %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// HTTPStatus is the server's answer.
func (e *Error) HTTPStatus() int { return e.Status }

// Refused reports a deliberate 4xx refusal (bad token, bad request, conflict),
// as opposed to an outage worth retrying soon.
func (e *Error) Refused() bool {
	return e.Status >= 400 && e.Status < 500 && e.Status != http.StatusRequestTimeout && e.Status != http.StatusTooManyRequests
}

// Register sends the registration request.
func (c *Client) Register(ctx context.Context, req protocol.RegisterRequest) (protocol.RegisterResponse, error) {
	var resp protocol.RegisterResponse
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := c.do(ctx, http.MethodPost, protocol.PathRegister, "", jsonBody(req), "application/json", &resp)
	return resp, err
}

// Reserve long-polls for a step for up to wait. It offers to be parked
// (park=1): the server may answer so instead (see protocol.HeaderParked),
// with no step and parked true.
func (c *Client) Reserve(ctx context.Context, wait time.Duration) (*protocol.Reservation, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, wait+15*time.Second)
	defer cancel()
	var asg protocol.Reservation
	path := protocol.PathReserve + "?park=1&wait=" + url.QueryEscape(wait.String())
	parked := false
	status, err := c.authed(ctx, http.MethodPost, path, nil, "", func(resp *http.Response) error {
		if resp.StatusCode == http.StatusNoContent {
			parked = resp.Header.Get(protocol.HeaderParked) == "1"
			return nil
		}
		return decodeInto(resp, &asg)
	})
	if err != nil || status == http.StatusNoContent {
		return nil, parked, err
	}
	return &asg, false, nil
}

// AppendLog uploads a chunk of step output at a byte offset.
func (c *Client) AppendLog(ctx context.Context, stepID string, lease protocol.LeaseRequest, offset int64, data []byte, times []protocol.LineTime) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	path := fmt.Sprintf(protocol.PathStepLog, url.PathEscape(stepID)) + "?attempt=" + strconv.Itoa(lease.Attempt) +
		"&lease=" + url.QueryEscape(lease.LeaseID) + "&offset=" + strconv.FormatInt(offset, 10)
	if len(times) > 0 {
		path += "&times=" + url.QueryEscape(protocol.FormatLineTimes(times))
	}
	_, err := c.authed(ctx, http.MethodPost, path, func() io.Reader { return bytes.NewReader(data) }, "application/octet-stream", nil)
	return err
}

// RenewLease extends the lease on a running step.
func (c *Client) RenewLease(ctx context.Context, stepID string, lease protocol.LeaseRequest) (protocol.Lease, error) {
	var out protocol.Lease
	path := fmt.Sprintf(protocol.PathStepLease, url.PathEscape(stepID))
	_, err := c.authed(ctx, http.MethodPost, path, jsonBody(lease), "application/json", &out)
	return out, err
}

// Trigger starts a follow-up run from a running step (cacher trigger).
func (c *Client) Trigger(ctx context.Context, stepID string, lease protocol.LeaseRequest, runbook string, params map[string]string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var out protocol.TriggerResponse
	path := fmt.Sprintf(protocol.PathStepTrigger, url.PathEscape(stepID))
	_, err := c.authed(ctx, http.MethodPost, path, jsonBody(protocol.TriggerRequest{Attempt: lease.Attempt, LeaseID: lease.LeaseID,
		Runbook: runbook, Params: params}), "application/json", &out)
	return out.RunID, err
}

// Complete reports a step's result. One try is bounded to 10 s: a
// connection that went dead (a path that drops packets) must not hold the
// report; the caller retries on a fresh one.
func (c *Client) Complete(ctx context.Context, stepID string, res protocol.StepResult) (*protocol.Reservation, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	path := fmt.Sprintf(protocol.PathStepComplete, url.PathEscape(stepID))
	var out protocol.CompleteResponse
	_, err := c.authed(ctx, http.MethodPost, path, jsonBody(res), "application/json", &out)
	return out.Next, err
}

// authed calls the agent API with a valid access token, renewing it once if
// the server rejects it.
func (c *Client) authed(ctx context.Context, method, path string, body func() io.Reader, ctype string, out any) (int, error) {
	for try := 0; ; try++ {
		token, err := c.accessToken(ctx, try > 0)
		if err != nil {
			return 0, err
		}
		status, err := c.call(ctx, method, path, token, body, ctype, out)
		var e *Error
		if try == 0 && errors.As(err, &e) && e.Status == http.StatusUnauthorized {
			continue
		}
		return status, err
	}
}

// accessToken returns a cached token, or signs for a new one when it is
// close to expiry or force is set.
func (c *Client) accessToken(ctx context.Context, force bool) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !force && c.token != "" && time.Until(c.expires) > 2*time.Minute {
		return c.token, nil
	}
	ts := time.Now().UnixMilli()
	req := protocol.TokenRequest{AgentID: c.agentID, Timestamp: ts, Signature: ed25519.Sign(c.key, protocol.TokenMessage(c.agentID, ts)),
		Protocol: protocol.ProtocolVersion}
	var resp protocol.TokenResponse
	if err := c.do(ctx, http.MethodPost, protocol.PathToken, "", jsonBody(req), "application/json", &resp); err != nil {
		return "", fmt.Errorf("access token: %w", err)
	}
	c.token, c.expires = resp.Token, resp.ExpiresAt
	return c.token, nil
}

func (c *Client) do(ctx context.Context, method, path, token string, body func() io.Reader, ctype string, out any) error {
	_, err := c.call(ctx, method, path, token, body, ctype, out)
	return err
}

// call sends one request. out is where a JSON answer is decoded, or a
// func(*http.Response) error that reads the answer itself, or nil.
func (c *Client) call(ctx context.Context, method, path, token string, body func() io.Reader, ctype string, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		rd = body()
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, rd)
	if err != nil {
		return 0, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if close, _ := ctx.Value(closeAfterKey{}).(bool); close && !c.h2c {
		req.Close = true // over h2c the connection is the control channel's
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set(protocol.HeaderEnvelope, protocol.EnvelopeSession)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return resp.StatusCode, errorFrom(resp.StatusCode, b)
	}
	var read func(*http.Response) error
	switch o := out.(type) {
	case func(*http.Response) error:
		read = o
	case nil:
	default:
		read = func(resp *http.Response) error {
			if resp.StatusCode == http.StatusNoContent {
				return nil
			}
			return decodeInto(resp, o)
		}
	}
	if read != nil {
		if err := read(resp); err != nil {
			return resp.StatusCode, fmt.Errorf("decode %s answer: %w", path, err)
		}
	}
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// closeAfterKey marks a call's context: close the connection after it.
type closeAfterKey struct{}

// decodeInto decodes a JSON answer into out.
func decodeInto(resp *http.Response, out any) error {
	return json.NewDecoder(resp.Body).Decode(out)
}

// errorFrom is the Error of a non-2xx answer with body b.
func errorFrom(status int, b []byte) *Error {
	var pe protocol.Error
	if json.Unmarshal(b, &pe) != nil || pe.Error == "" {
		pe.Error = strings.TrimSpace(string(b))
	}
	return &Error{Status: status, Message: pe.Error, Details: pe.Details}
}

func jsonBody(v any) func() io.Reader {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only protocol types are passed
	}
	return func() io.Reader { return bytes.NewReader(b) }
}
