package api_test

import (
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/baton-ci/baton/shared/envelope"
	"github.com/baton-ci/baton/shared/protocol"
)

// A reservation is sealed in the agent's session only for an agent that
// says it opens session envelopes; any other gets one HPKE message per
// payload, as before (an agent older than sessions).
func TestSessionEnvelopeOnlyForAgentsThatAcceptIt(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	agent := ts.newAgent(t, "sealed")
	ts.createRun(t, "p", "steps:\n  - name: a\n    command: x\n  - name: b\n    command: y\n")
	serverKey := ts.key.Public().(ed25519.PublicKey)
	opener := envelope.NewOpener(agent.HPKE, serverKey, agent.ID)

	reserve := func(header map[string]string) protocol.Reservation {
		t.Helper()
		res := ts.do(t, request{Method: http.MethodPost, Path: protocol.PathReserve + "?wait=0s", Auth: "Bearer " + agent.Token, Header: header})
		wantStatus(t, "reserve", res, http.StatusOK)
		var rsv protocol.Reservation
		res.decode(t, &rsv)
		ts.leases.Store(rsv.StepID, rsv.LeaseID)
		return rsv
	}
	assignment := func(plain []byte, err error, rsv protocol.Reservation) {
		t.Helper()
		if err != nil {
			t.Fatalf("open %q reservation: %v", rsv.Envelope, err)
		}
		var as protocol.Assignment
		if err := json.Unmarshal(plain, &as); err != nil || as.StepID != rsv.StepID || as.LeaseID != rsv.LeaseID {
			t.Fatalf("assignment %+v (%v) for reservation %+v", as, err, rsv)
		}
	}

	first := reserve(map[string]string{protocol.HeaderEnvelope: protocol.EnvelopeSession})
	if first.Envelope != protocol.EnvelopeSession {
		t.Fatalf("envelope %q for an agent that accepts sessions", first.Envelope)
	}
	b := envelope.Binding{AgentID: agent.ID, StepID: first.StepID, Attempt: first.Attempt}
	plain, err := opener.Open(b, first.Sealed)
	assignment(plain, err, first)
	if _, err := envelope.Open(agent.HPKE, serverKey, b, first.Sealed); err == nil {
		t.Error("a session envelope opened as a single HPKE message")
	}

	second := reserve(nil)
	if second.Envelope != "" {
		t.Fatalf("envelope %q for an agent that did not ask for sessions", second.Envelope)
	}
	plain, err = envelope.Open(agent.HPKE, serverKey, envelope.Binding{AgentID: agent.ID, StepID: second.StepID, Attempt: second.Attempt}, second.Sealed)
	assignment(plain, err, second)
}
