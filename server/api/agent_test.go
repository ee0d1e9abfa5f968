package api_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"github.com/baton-ci/baton/server/api"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/baton-ci/baton/shared/protocol"
)

func TestAgentFlow(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	agent := ts.newAgent(t, "runner-1")

	// The agent shows up in the admin API.
	res := ts.admin(t, http.MethodGet, "/api/v1/agents/"+agent.ID, nil)
	wantStatus(t, "get agent", res, http.StatusOK)
	var view protocol.Agent
	res.decode(t, &view)
	if view.ID != agent.ID || view.Name != "runner-1" || view.State != "enabled" {
		t.Errorf("agent view = %+v", view)
	}
	if strings.Contains(string(res.Body), "key") {
		t.Errorf("agent view exposes key material: %s", res.Body)
	}

	run := ts.createRun(t, "flow", diamondRunbook)
	as := agent.reserveStep(t, ts, "a")
	if as.RunID != run.ID || as.Project != "flow" || as.Attempt != 1 || as.Command != "echo a" || as.Image != "busybox" ||
		as.Env["GREETING"] != "hello" || as.Env["STEP"] != "a" {
		t.Errorf("assignment = %+v", as)
	}
	// Nothing else is ready until a finishes.
	wantStatus(t, "reserve while a runs", agent.reserve(t, ts, "0s"), http.StatusNoContent)

	// Log upload: retried chunks are stored once.
	for _, c := range []struct {
		offset int64
		data   string
	}{{0, "hello\n"}, {6, "world\n"}, {0, "hello\n"}, {6, "world\n"}} {
		wantStatus(t, fmt.Sprintf("append log at %d", c.offset), agent.appendLog(t, ts, as.StepID, 1, c.offset, c.data), http.StatusNoContent)
	}
	res = agent.appendLog(t, ts, as.StepID, 2, 12, "wrong attempt\n")
	wantStatus(t, "append log for another attempt", res, http.StatusConflict)
	res.errorMessage(t)
	wantStatus(t, "append log without offset", agent.call(t, ts, http.MethodPost, fmt.Sprintf(protocol.PathStepLog, as.StepID)+"?attempt=1", "", []byte("x")), http.StatusBadRequest)
	wantStatus(t, "append log to unknown step", agent.appendLog(t, ts, uuid.NewString(), 1, 0, "x"), http.StatusNotFound)

	// Another agent cannot write to or complete this agent's step.
	other := ts.newAgent(t, "runner-2")
	wantStatus(t, "other agent appends", other.appendLog(t, ts, as.StepID, 1, 12, "intruder\n"), http.StatusConflict)
	wantStatus(t, "other agent completes", other.complete(t, ts, as.StepID, protocol.StepResult{Attempt: 1, ExitCode: new(0)}), http.StatusConflict)

	res = ts.admin(t, http.MethodGet, "/api/v1/runs/"+run.ID+"/steps/a/log", nil)
	wantStatus(t, "get log", res, http.StatusOK)
	if string(res.Body) != "hello\nworld\n" || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("log = %q (%s), want %q as text/plain", res.Body, res.Header.Get("Content-Type"), "hello\nworld\n")
	}

	// Completion, its retry, and a conflicting late report.
	wantStatus(t, "complete a", agent.complete(t, ts, as.StepID, protocol.StepResult{Attempt: 1, ExitCode: new(0)}), http.StatusNoContent)
	wantStatus(t, "complete a again", agent.complete(t, ts, as.StepID, protocol.StepResult{Attempt: 1, ExitCode: new(0)}), http.StatusNoContent)
	res = agent.complete(t, ts, as.StepID, protocol.StepResult{Attempt: 1, ExitCode: new(3)})
	wantStatus(t, "complete a with another result", res, http.StatusConflict)
	res.errorMessage(t)
	wantStatus(t, "complete with unknown field",
		agent.call(t, ts, http.MethodPost, fmt.Sprintf(protocol.PathStepComplete, as.StepID), "application/json", []byte(`{"attempt":1,"exit_code":0,"bogus":1}`)),
		http.StatusBadRequest)

	if got := stepStates(ts.getRun(t, run.ID)); got != "a=succeeded b=ready c=ready d=pending" {
		t.Errorf("after a: %s", got)
	}

	// The rest of the diamond, b failing: d is skipped and the run fails once c ends.
	b := agent.reserveStep(t, ts, "b")
	c := other.reserveStep(t, ts, "c")
	wantStatus(t, "complete b", agent.complete(t, ts, b.StepID, protocol.StepResult{Attempt: 1, ExitCode: new(2)}), http.StatusNoContent)
	got := ts.getRun(t, run.ID)
	if stepStates(got) != "a=succeeded b=failed c=running d=skipped" || got.State != "running" {
		t.Errorf("after b failed: run %s, %s", got.State, stepStates(got))
	}
	wantStatus(t, "complete c", other.complete(t, ts, c.StepID, protocol.StepResult{Attempt: 1, ExitCode: new(0)}), http.StatusNoContent)
	got = ts.getRun(t, run.ID)
	if got.State != "failed" || got.FinishedAt == nil {
		t.Errorf("run after every step ended: state %s finished %v, want failed with a time", got.State, got.FinishedAt)
	}
	if got.Steps[1].ExitCode == nil || *got.Steps[1].ExitCode != 2 || got.Steps[2].AgentID != other.ID {
		t.Errorf("steps = %+v", got.Steps)
	}
	wantStatus(t, "reserve after the run ended", agent.reserve(t, ts, "0s"), http.StatusNoContent)
}

func TestReserveLongPoll(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	agent := ts.newAgent(t, "poller")

	t.Run("bad wait", func(t *testing.T) {
		res := agent.reserve(t, ts, "soon")
		wantStatus(t, "reserve ?wait=soon", res, http.StatusBadRequest)
		res.errorMessage(t)
	})

	t.Run("204 when nothing is ready", func(t *testing.T) {
		start := time.Now()
		res := agent.reserve(t, ts, "1s")
		elapsed := time.Since(start)
		wantStatus(t, "reserve on an empty queue", res, http.StatusNoContent)
		if len(res.Body) != 0 {
			t.Errorf("204 has a body: %q", res.Body)
		}
		if elapsed < 900*time.Millisecond || elapsed > 6*time.Second {
			t.Errorf("reserve ?wait=1s answered after %s, want about 1s", elapsed)
		}
	})

	t.Run("woken by a new run", func(t *testing.T) {
		before := ts.lastSeen(t, agent.ID)
		const wait = 20 * time.Second
		done := make(chan *response, 1)
		go func() {
			// t.Fatal must not be called off the test goroutine: do the request by hand.
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.URL+protocol.PathReserve+"?wait="+wait.String(), nil)
			req.Header.Set("Authorization", "Bearer "+agent.Token)
			res, err := ts.client.Do(req)
			if err != nil {
				done <- &response{Status: -1, Body: []byte(err.Error())}
				return
			}
			defer res.Body.Close()
			var body json.RawMessage
			json.NewDecoder(res.Body).Decode(&body)
			done <- &response{Status: res.StatusCode, Body: body}
		}()

		// The handler touches the agent right before it first looks for work;
		// once last_seen moves, the long-poll is in flight.
		waitFor(t, 5*time.Second, "the reserve long-poll to start", func() bool {
			return ts.lastSeen(t, agent.ID).After(before)
		})
		select {
		case res := <-done:
			t.Fatalf("reserve answered %d %s before any run existed", res.Status, res.Body)
		default:
		}

		created := time.Now()
		run := ts.createRun(t, "wake", diamondRunbook)
		// A lost wake would only be noticed by the rescan, 2.5s at the earliest.
		select {
		case res := <-done:
			elapsed := time.Since(created)
			wantStatus(t, "woken reserve", res, http.StatusOK)
			as := agent.open(t, ts, res)
			if as.RunID != run.ID || as.StepName != "a" {
				t.Errorf("woken reserve got %+v, want step a of run %s", as, run.ID)
			}
			if elapsed > 2*time.Second {
				t.Errorf("reserve answered %s after the run was created; the wake was missed", elapsed)
			}
		case <-time.After(wait):
			t.Fatalf("reserve did not answer within %s of the run being created", wait)
		}
	})
}

// lastSeen reads an agent's last_seen through the admin API.
func (ts *testServer) lastSeen(t *testing.T, id string) time.Time {
	t.Helper()
	res := ts.admin(t, http.MethodGet, "/api/v1/agents/"+id, nil)
	wantStatus(t, "get agent", res, http.StatusOK)
	var a protocol.Agent
	res.decode(t, &a)
	return a.LastSeen
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

func TestRegisterRejects(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	token := ts.registrationToken(t)
	signing, hpke := newAgentKeys(t)
	id := uuid.NewString()
	wantStatus(t, "register", ts.register(t, registerRequest(token, id, "r1", signing, hpke)), http.StatusOK)
	wantStatus(t, "register again with the same keys", ts.register(t, registerRequest(token, id, "r1-renamed", signing, hpke)), http.StatusOK)

	otherSigning, otherHPKE := newAgentKeys(t)
	short := registerRequest(token, uuid.NewString(), "r", signing, hpke)
	short.SigningKey = short.SigningKey[:16]
	shortHPKE := registerRequest(token, uuid.NewString(), "r", signing, hpke)
	shortHPKE.HPKEKey = shortHPKE.HPKEKey[:31]
	tests := []struct {
		name   string
		req    protocol.RegisterRequest
		status int
	}{
		{"bad registration token", registerRequest("brt_not-a-token", uuid.NewString(), "r", signing, hpke), http.StatusUnauthorized},
		{"no registration token", registerRequest("", uuid.NewString(), "r", signing, hpke), http.StatusUnauthorized},
		{"known id, bad token", registerRequest("brt_not-a-token", id, "r1", signing, hpke), http.StatusUnauthorized},
		{"known id, other signing key", registerRequest(token, id, "r1", otherSigning, hpke), http.StatusConflict},
		{"known id, other hpke key", registerRequest(token, id, "r1", signing, otherHPKE), http.StatusConflict},
		{"id not a uuid", registerRequest(token, "agent-1", "r", signing, hpke), http.StatusBadRequest},
		{"no name", registerRequest(token, uuid.NewString(), "", signing, hpke), http.StatusBadRequest},
		{"short signing key", short, http.StatusBadRequest},
		{"short hpke key", shortHPKE, http.StatusBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := ts.register(t, tc.req)
			if res.Status != tc.status {
				t.Fatalf("status %d, want %d; body %s", res.Status, tc.status, res.Body)
			}
			res.errorMessage(t)
		})
	}
	t.Run("malformed json", func(t *testing.T) {
		t.Parallel()
		res := ts.do(t, request{Method: http.MethodPost, Path: protocol.PathRegister, ContentType: "application/json", Body: []byte(`{"token":`)})
		wantStatus(t, "register with broken JSON", res, http.StatusBadRequest)
	})
}

func TestTokenRequestRejected(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	agent := ts.newAgent(t, "signer")
	_, stranger, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()

	sign := func(id string, key ed25519.PrivateKey, ms int64, msgID string) protocol.TokenRequest {
		return protocol.TokenRequest{AgentID: id, Timestamp: ms, Signature: ed25519.Sign(key, protocol.TokenMessage(msgID, ms))}
	}
	badSig := sign(agent.ID, agent.Signing, now.UnixMilli(), agent.ID)
	badSig.Signature[0] ^= 0xff
	tests := []struct {
		name string
		req  protocol.TokenRequest
	}{
		{"corrupted signature", badSig},
		{"signed by another key", sign(agent.ID, stranger, now.UnixMilli(), agent.ID)},
		{"signature over another agent id", sign(agent.ID, agent.Signing, now.UnixMilli(), uuid.NewString())},
		{"signature over another timestamp", func() protocol.TokenRequest {
			r := sign(agent.ID, agent.Signing, now.UnixMilli(), agent.ID)
			r.Timestamp++
			return r
		}()},
		{"no signature", protocol.TokenRequest{AgentID: agent.ID, Timestamp: now.UnixMilli()}},
		{"timestamp 10 minutes old", sign(agent.ID, agent.Signing, now.Add(-10*time.Minute).UnixMilli(), agent.ID)},
		{"timestamp 10 minutes ahead", sign(agent.ID, agent.Signing, now.Add(10*time.Minute).UnixMilli(), agent.ID)},
		{"unknown agent", sign(uuid.NewString(), agent.Signing, now.UnixMilli(), agent.ID)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := ts.do(t, request{Method: http.MethodPost, Path: protocol.PathToken, ContentType: "application/json", Body: mustJSON(t, tc.req)})
			if res.Status != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401; body %s", res.Status, res.Body)
			}
			if strings.Contains(string(res.Body), `"token"`) {
				t.Errorf("refused request got a token: %s", res.Body)
			}
			res.errorMessage(t)
		})
	}
	// Control: a correct request within the allowed skew succeeds.
	wantStatus(t, "token request 2 minutes behind", ts.requestToken(t, agent.ID, agent.Signing, now.Add(-2*time.Minute)), http.StatusOK)
}

func TestAgentTokenRejected(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	agent := ts.newAgent(t, "jwt-target")
	pub := ts.key.Public().(ed25519.PublicKey)
	_, otherKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()

	// claims are what the server issues, edited by each case.
	claims := func(edit func(*jwt.RegisteredClaims)) jwt.RegisteredClaims {
		c := jwt.RegisteredClaims{
			Issuer:    tokenIssuer,
			Subject:   agent.ID,
			Audience:  jwt.ClaimStrings{tokenAudience},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
			ExpiresAt: jwt.NewNumericDate(now.Add(10 * time.Minute)),
		}
		if edit != nil {
			edit(&c)
		}
		return c
	}
	sign := func(method jwt.SigningMethod, key any, c jwt.RegisteredClaims) string {
		t.Helper()
		s, err := jwt.NewWithClaims(method, c).SignedString(key)
		if err != nil {
			t.Fatalf("sign %s: %v", method.Alg(), err)
		}
		return s
	}
	eddsa := func(edit func(*jwt.RegisteredClaims)) string {
		return sign(jwt.SigningMethodEdDSA, ts.key, claims(edit))
	}

	// Control: a token forged exactly like the server's is accepted, so each
	// case below fails for the one thing it changes.
	res := agent.call(t, ts, http.MethodPost, protocol.PathReserve+"?wait=0s", "", nil)
	wantStatus(t, "reserve with the issued token", res, http.StatusNoContent)
	res = ts.do(t, request{Method: http.MethodPost, Path: protocol.PathReserve + "?wait=0s", Auth: "Bearer " + eddsa(nil)})
	wantStatus(t, "reserve with a well-formed test token", res, http.StatusNoContent)

	// alg re-encodes a token's header with another alg, keeping its claims
	// and signature.
	alg := func(token, alg string) string {
		parts := strings.SplitN(token, ".", 3)
		raw, err := base64.RawURLEncoding.DecodeString(parts[0])
		if err != nil {
			t.Fatal(err)
		}
		var h map[string]any
		if err := json.Unmarshal(raw, &h); err != nil {
			t.Fatal(err)
		}
		h["alg"] = alg
		return base64.RawURLEncoding.EncodeToString(mustJSON(t, h)) + "." + parts[1] + "." + parts[2]
	}

	tests := []struct {
		name string
		auth string // the whole Authorization header
	}{
		{"no token", ""},
		{"empty bearer", "Bearer "},
		{"garbage", "Bearer not.a.jwt"},
		{"garbage without dots", "Bearer garbage"},
		{"admin token", "Bearer " + adminToken},
		{"token without bearer scheme", eddsa(nil)},
		{"alg none", "Bearer " + sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(nil))},
		{"alg none, signature stripped", "Bearer " + func() string {
			p := strings.SplitN(eddsa(nil), ".", 3)
			return alg(p[0]+"."+p[1]+".", "none")
		}()},
		{"HS256 keyed with the public key", "Bearer " + sign(jwt.SigningMethodHS256, []byte(pub), claims(nil))},
		{"EdDSA signature relabelled HS256", "Bearer " + alg(eddsa(nil), "HS256")},
		{"wrong audience", "Bearer " + eddsa(func(c *jwt.RegisteredClaims) { c.Audience = jwt.ClaimStrings{"baton-admin-api"} })},
		{"no audience", "Bearer " + eddsa(func(c *jwt.RegisteredClaims) { c.Audience = nil })},
		{"wrong issuer", "Bearer " + eddsa(func(c *jwt.RegisteredClaims) { c.Issuer = "someone-else" })},
		{"no issuer", "Bearer " + eddsa(func(c *jwt.RegisteredClaims) { c.Issuer = "" })},
		{"expired", "Bearer " + eddsa(func(c *jwt.RegisteredClaims) {
			c.IssuedAt = jwt.NewNumericDate(now.Add(-20 * time.Minute))
			c.NotBefore = jwt.NewNumericDate(now.Add(-21 * time.Minute))
			c.ExpiresAt = jwt.NewNumericDate(now.Add(-5 * time.Minute))
		})},
		{"no expiry", "Bearer " + eddsa(func(c *jwt.RegisteredClaims) { c.ExpiresAt = nil })},
		{"not yet valid", "Bearer " + eddsa(func(c *jwt.RegisteredClaims) { c.NotBefore = jwt.NewNumericDate(now.Add(5 * time.Minute)) })},
		{"issued in the future", "Bearer " + eddsa(func(c *jwt.RegisteredClaims) { c.IssuedAt = jwt.NewNumericDate(now.Add(5 * time.Minute)) })},
		{"signed by another ed25519 key", "Bearer " + sign(jwt.SigningMethodEdDSA, otherKey, claims(nil))},
		{"unknown agent", "Bearer " + eddsa(func(c *jwt.RegisteredClaims) { c.Subject = uuid.NewString() })},
		{"no subject", "Bearer " + eddsa(func(c *jwt.RegisteredClaims) { c.Subject = "" })},
		{"tampered claims", "Bearer " + func() string {
			p := strings.SplitN(eddsa(nil), ".", 3)
			other := sign(jwt.SigningMethodEdDSA, otherKey, claims(func(c *jwt.RegisteredClaims) { c.Subject = uuid.NewString() }))
			return p[0] + "." + strings.SplitN(other, ".", 3)[1] + "." + p[2]
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := ts.do(t, request{Method: http.MethodPost, Path: protocol.PathReserve + "?wait=0s", Auth: tc.auth})
			if res.Status != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401; body %s", res.Status, res.Body)
			}
			res.errorMessage(t)
		})
	}
}

func TestAgentRoutesRequireAgentToken(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	step := uuid.NewString()
	for _, path := range []string{
		protocol.PathReserve,
		fmt.Sprintf(protocol.PathStepLog, step) + "?attempt=1&offset=0",
		fmt.Sprintf(protocol.PathStepComplete, step),
	} {
		for _, auth := range []string{"", "Bearer " + adminToken} {
			res := ts.do(t, request{Method: http.MethodPost, Path: path, Auth: auth, ContentType: "application/json", Body: []byte(`{"attempt":1}`)})
			if res.Status != http.StatusUnauthorized {
				t.Errorf("POST %s with %q: status %d, want 401", path, auth, res.Status)
				continue
			}
			res.errorMessage(t)
		}
	}
}

// After DELETE, the agent's access token is refused at once (except to read
// its deletion), and its keys cannot register again.
func TestDeletedAgentIsShutOut(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	agent := ts.newAgent(t, "gone")
	wantStatus(t, "reserve before delete", agent.reserve(t, ts, "0s"), http.StatusNoContent)
	wantStatus(t, "delete", ts.admin(t, "DELETE", "/api/v1/agents/"+agent.ID, nil), http.StatusNoContent)
	wantStatus(t, "reserve after delete", agent.reserve(t, ts, "0s"), http.StatusUnauthorized)
	res := agent.call(t, ts, "GET", "/api/v1/agent/state", "", nil)
	wantStatus(t, "state after delete", res, http.StatusOK)
	var st protocol.AgentState
	res.decode(t, &st)
	if st.State != "deleted" {
		t.Errorf("state %q", st.State)
	}
	wantStatus(t, "enable a deleted agent", ts.admin(t, "POST", "/api/v1/agents/"+agent.ID+"/enable", nil), http.StatusConflict)
	res = ts.register(t, registerRequest(ts.registrationToken(t), agent.ID, "gone", agent.Signing, agent.HPKE))
	wantStatus(t, "register again with the old keys", res, http.StatusUnauthorized)
}

// A disabled agent keeps its token but gets 409 from reserve.
func TestDisabledAgentReservesNothing(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	agent := ts.newAgent(t, "off")
	ts.createRun(t, "p", "steps:\n  - name: a\n    command: x\n")
	wantStatus(t, "disable", ts.admin(t, "POST", "/api/v1/agents/"+agent.ID+"/disable", nil), http.StatusOK)
	wantStatus(t, "reserve while disabled", agent.reserve(t, ts, "0s"), http.StatusConflict)
	wantStatus(t, "enable", ts.admin(t, "POST", "/api/v1/agents/"+agent.ID+"/enable", nil), http.StatusOK)
	agent.reserveStep(t, ts, "a")
}

// A step nobody can run says why in the run view; so do steps waiting on
// dependencies.
func TestRunViewSaysWhyStepsWait(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.newAgent(t, "plain")
	run := ts.createRun(t, "why", "steps:\n  - name: train\n    runs_on: [gpu]\n    command: x\n  - name: report\n    depends_on: train\n    command: x\n")
	got := ts.getRun(t, run.ID)
	want := map[string]string{"train": "no enabled agent with labels gpu", "report": "waiting on dependencies: train"}
	for _, st := range got.Steps {
		if st.Waiting != want[st.Name] {
			t.Errorf("step %s waiting %q, want %q", st.Name, st.Waiting, want[st.Name])
		}
	}
	if code := ts.admin(t, http.MethodPut, "/api/v1/projects/why", map[string]int{"max_running": -1}).Status; code != http.StatusBadRequest {
		t.Errorf("max_running -1: %d, want 400", code)
	}
	res := ts.admin(t, http.MethodPut, "/api/v1/projects/why", map[string]int{"max_running": 2})
	wantStatus(t, "put project", res, http.StatusOK)
	var p protocol.Project
	res.decode(t, &p)
	if p.MaxRunning != 2 || p.Weight != 1 || p.Name != "why" {
		t.Errorf("project %+v", p)
	}
}

// The server masks secrets again before storing a log, even one split
// across two uploads, and keeps offsets true (an agent that failed to mask
// does not leak through the server).
func TestServerMasksUploadedLogs(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	agent := ts.newAgent(t, "leaky")
	const secret = "s3cr3t-value-that-leaks"
	wantStatus(t, "set secret", ts.admin(t, "PUT", "/api/v1/projects/mask/secrets/TOKEN", map[string]string{"value": secret}), 204)
	run := ts.createRun(t, "mask", "steps:\n  - name: a\n    command: x\n    secrets: [TOKEN]\n")
	as := agent.reserveStep(t, ts, "a")
	first, second := "start "+secret[:9], secret[9:]+" end "+secret+"\n"
	wantStatus(t, "chunk 1", agent.appendLog(t, ts, as.StepID, 1, 0, first), http.StatusNoContent)
	wantStatus(t, "chunk 2", agent.appendLog(t, ts, as.StepID, 1, int64(len(first)), second), http.StatusNoContent)
	wantStatus(t, "chunk 2 again", agent.appendLog(t, ts, as.StepID, 1, int64(len(first)), second), http.StatusNoContent)
	res := ts.admin(t, http.MethodGet, "/api/v1/runs/"+run.ID+"/steps/a/log", nil)
	wantStatus(t, "get log", res, http.StatusOK)
	stars := strings.Repeat("*", len(secret))
	if want := "start " + stars + " end " + stars + "\n"; string(res.Body) != want {
		t.Errorf("stored log %q, want %q", res.Body, want)
	}
}

// The log API can prefix each line with when the agent saw it written.
func TestStepLogWithTimestamps(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	agent := ts.newAgent(t, "clock")
	run := ts.createRun(t, "times", "steps:\n  - name: a\n    command: x\n")
	as := agent.reserveStep(t, ts, "a")
	t0 := time.Date(2026, 11, 24, 1, 2, 3, 456e6, time.UTC).UnixMilli()
	upload := func(offset int64, data, times string) *response {
		path := fmt.Sprintf(protocol.PathStepLog, as.StepID) + fmt.Sprintf("?attempt=1&offset=%d&lease=%s&times=%s", offset, ts.lease(as.StepID), times)
		return agent.call(t, ts, http.MethodPost, path, "application/octet-stream", []byte(data))
	}
	wantStatus(t, "chunk 1", upload(0, "one\ntwo\nthr", fmt.Sprintf("0:%d,4:%d", t0, t0+1500)), http.StatusNoContent)
	wantStatus(t, "chunk 2", upload(11, "ee\nfour\n", fmt.Sprintf("3:%d", t0+60000)), http.StatusNoContent)
	wantStatus(t, "times out of the chunk", upload(19, "x\n", fmt.Sprintf("5:%d", t0)), http.StatusBadRequest)
	wantStatus(t, "times not increasing", upload(19, "x\ny\n", fmt.Sprintf("2:%d,0:%d", t0, t0)), http.StatusBadRequest)
	res := ts.admin(t, http.MethodGet, "/api/v1/runs/"+run.ID+"/steps/a/log?timestamps=true", nil)
	wantStatus(t, "get log", res, http.StatusOK)
	want := "2026-11-24T01:02:03.456Z one\n2026-11-24T01:02:04.956Z two\n2026-11-24T01:02:04.956Z three\n2026-11-24T01:03:03.456Z four\n"
	if string(res.Body) != want {
		t.Errorf("log with timestamps:\n%s\nwant:\n%s", res.Body, want)
	}
}

// A run's sources are validated, shown, and sealed into each assignment.
func TestRunSourcesReachTheAgent(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	agent := ts.newAgent(t, "src")
	bad := protocol.CreateRunRequest{Project: "src", Runbook: "steps:\n  - name: a\n    command: x\n",
		Source: &protocol.Source{Type: "git", URL: "https://example.com/r.git", Commit: "not-hex"}}
	res := ts.admin(t, http.MethodPost, "/api/v1/runs", bad)
	wantStatus(t, "bad commit", res, http.StatusBadRequest)
	if msg := res.errorMessage(t); !strings.Contains(msg, "source.commit") {
		t.Errorf("error %q does not name source.commit", msg)
	}
	req := bad
	req.Source = &protocol.Source{Type: "git", URL: "https://example.com/r.git", Commit: "0123abcd"}
	req.CISource = &protocol.Source{Type: "git", URL: "https://example.com/ci.git", Ref: "main"}
	res = ts.admin(t, http.MethodPost, "/api/v1/runs", req)
	wantStatus(t, "create", res, http.StatusCreated)
	var run protocol.Run
	res.decode(t, &run)
	if run.Source == nil || run.Source.Commit != "0123abcd" || run.CISource == nil || run.CISource.Ref != "main" {
		t.Errorf("run view sources %+v %+v", run.Source, run.CISource)
	}
	as := agent.reserveStep(t, ts, "a")
	if as.Source == nil || *as.Source != *req.Source || as.CISource == nil || *as.CISource != *req.CISource {
		t.Errorf("assignment sources %+v %+v", as.Source, as.CISource)
	}
}

// The queue, as JSON and as Prometheus metrics: ready steps by the labels
// they need, the oldest one's wait, and the agents that could take them.
func TestQueueAndMetrics(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.newAgent(t, "plain")
	ts.createRun(t, "q", "steps:\n  - name: train\n    runs_on: [gpu]\n    command: x\n  - name: a\n    command: x\n  - name: b\n    command: x\n")
	ts.srv.SetNow(func() time.Time { return time.Now().Add(time.Minute) }) // the steps have waited a minute
	res := ts.admin(t, http.MethodGet, "/api/v1/queue", nil)
	wantStatus(t, "queue", res, http.StatusOK)
	var lines []protocol.QueueLine
	res.decode(t, &lines)
	got := map[string]protocol.QueueLine{}
	for _, l := range lines {
		got[strings.Join(l.Labels, ",")] = l
	}
	if g := got["gpu"]; g.Ready != 1 || g.Agents != 0 || g.OldestReadySeconds < 59 || g.OldestReadySeconds > 70 {
		t.Errorf("gpu line %+v", g)
	}
	if p := got[""]; p.Ready != 2 || p.Agents != 1 {
		t.Errorf("no-label line %+v", p)
	}
	if res := ts.do(t, request{Method: http.MethodGet, Path: "/metrics"}); res.Status != http.StatusUnauthorized {
		t.Errorf("unauthenticated /metrics: %d", res.Status)
	}
	res = ts.admin(t, http.MethodGet, "/metrics", nil)
	wantStatus(t, "metrics", res, http.StatusOK)
	for _, want := range []string{`baton_queue_ready_steps{labels="gpu"} 1`, `baton_queue_matching_agents{labels="gpu"} 0`,
		`baton_queue_ready_steps{labels=""} 2`, `baton_agents{state="enabled"} 1`, "# TYPE baton_queue_oldest_ready_seconds gauge"} {
		if !strings.Contains(string(res.Body), want) {
			t.Errorf("metrics lack %q:\n%s", want, res.Body)
		}
	}
}

// last_seen is written when it is older than SeenResolution, not on every
// call: a reserve per step would otherwise cost a write per step.
func TestLastSeenResolution(t *testing.T) {
	t.Parallel()
	ts := newTestServerWith(t, func(s *api.Server) { s.SeenResolution = 300 * time.Millisecond })
	agent := ts.newAgent(t, "seen")
	wantStatus(t, "reserve", agent.reserve(t, ts, "0s"), http.StatusNoContent)
	first := ts.lastSeen(t, agent.ID)
	for range 3 {
		wantStatus(t, "reserve", agent.reserve(t, ts, "0s"), http.StatusNoContent)
	}
	if got := ts.lastSeen(t, agent.ID); !got.Equal(first) && got.Sub(first) < 300*time.Millisecond {
		t.Errorf("last_seen moved from %v to %v within the resolution", first, got)
	}
	waitFor(t, 5*time.Second, "last_seen to move after the resolution", func() bool {
		wantStatus(t, "reserve", agent.reserve(t, ts, "0s"), http.StatusNoContent)
		return ts.lastSeen(t, agent.ID).Sub(first) >= 300*time.Millisecond
	})
}

// A token verified once is remembered, but not past its expiry.
func TestRememberedTokenStillExpires(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	agent := ts.newAgent(t, "expiring")
	for range 2 {
		wantStatus(t, "reserve", agent.reserve(t, ts, "0s"), http.StatusNoContent)
	}
	ts.srv.SetNow(func() time.Time { return time.Now().Add(time.Hour) })
	res := agent.reserve(t, ts, "0s")
	wantStatus(t, "reserve with the same token an hour later", res, http.StatusUnauthorized)
	if msg := res.errorMessage(t); !strings.Contains(msg, "expired") {
		t.Errorf("error %q does not say the token expired", msg)
	}
}
