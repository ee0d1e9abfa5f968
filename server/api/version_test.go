package api_test

import (
	"crypto/ed25519"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/baton-ci/baton/server/api"
	"github.com/baton-ci/baton/shared/protocol"
)

// An agent whose protocol the server does not speak is refused at
// registration and at the token call with 426 and a message naming both
// versions and what to upgrade; an agent that sends none is version 1.
func TestAgentProtocolVersion(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	token := ts.registrationToken(t)
	signing, hpke := newAgentKeys(t)
	id := uuid.NewString()
	req := registerRequest(token, id, "future", signing, hpke)

	req.Protocol = protocol.ProtocolVersion + 98
	res := ts.register(t, req)
	wantStatus(t, "register a newer agent", res, http.StatusUpgradeRequired)
	var e protocol.Error
	res.decode(t, &e)
	for _, want := range []string{"agent protocol 99", "server speaks agent protocol 1", "upgrade the server"} {
		if !strings.Contains(e.Error, want) {
			t.Errorf("refusal %q lacks %q", e.Error, want)
		}
	}

	req.Protocol = 0 // an agent from before the field: version 1
	wantStatus(t, "register an agent that sends no protocol", ts.register(t, req), http.StatusOK)
	req.Protocol = protocol.ProtocolVersion
	wantStatus(t, "register again with the current protocol", ts.register(t, req), http.StatusOK)

	ms := time.Now().UnixMilli()
	treq := protocol.TokenRequest{AgentID: id, Timestamp: ms, Signature: ed25519.Sign(signing, protocol.TokenMessage(id, ms)),
		Protocol: protocol.ProtocolVersion + 1}
	res = ts.do(t, request{Method: http.MethodPost, Path: protocol.PathToken, ContentType: "application/json", Body: mustJSON(t, treq)})
	wantStatus(t, "token for a newer agent", res, http.StatusUpgradeRequired)

	// A server that no longer speaks protocol 1 tells an old agent to upgrade.
	old := newTestServerWith(t, func(s *api.Server) { s.SetMinAgentProtocol(protocol.ProtocolVersion + 1) })
	signing, hpke = newAgentKeys(t)
	res = old.register(t, registerRequest(old.registrationToken(t), uuid.NewString(), "old", signing, hpke))
	wantStatus(t, "register an old agent", res, http.StatusUpgradeRequired)
	e = protocol.Error{}
	res.decode(t, &e)
	for _, want := range []string{"agent protocol 1 is too old", "upgrade the agent"} {
		if !strings.Contains(e.Error, want) {
			t.Errorf("refusal %q lacks %q", e.Error, want)
		}
	}
}
