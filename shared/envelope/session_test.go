package envelope_test

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/baton-ci/baton/shared/envelope"
)

func TestSessionSealOpen(t *testing.T) {
	t.Parallel()
	server, agentA := keys(t)
	otherServer, agentB := keys(t)
	pub := server.Public().(ed25519.PublicKey)
	sessions := envelope.NewSessions(server)
	b := envelope.Binding{AgentID: "A", StepID: "s1", Attempt: 2}
	payload := []byte(`{"command":"deploy","secrets":{"TOKEN":"x"}}`)
	sealed, err := sessions.Seal(agentA.PublicKey().Bytes(), b, payload)
	if err != nil {
		t.Fatal(err)
	}
	opener := envelope.NewOpener(agentA, pub, "A")
	for i := range 2 { // the second time from the opener's remembered key
		if got, err := opener.Open(b, sealed); err != nil || string(got) != string(payload) {
			t.Fatalf("open %d: %q %v", i, got, err)
		}
	}
	// The same session serves the next payload; its header is the same.
	b2 := envelope.Binding{AgentID: "A", StepID: "s2", Attempt: 1}
	sealed2, err := sessions.Seal(agentA.PublicKey().Bytes(), b2, []byte("next"))
	if err != nil {
		t.Fatal(err)
	}
	if string(sealed2[:96]) != string(sealed[:96]) {
		t.Error("a second payload set up a new session")
	}
	if got, err := opener.Open(b2, sealed2); err != nil || string(got) != "next" {
		t.Fatalf("open second: %q %v", got, err)
	}

	flipped := append([]byte(nil), sealed...)
	flipped[len(flipped)-3] ^= 1
	badSig := append([]byte(nil), sealed...)
	badSig[40] ^= 1
	forged, err := envelope.NewSessions(otherServer).Seal(agentA.PublicKey().Bytes(), b, payload)
	if err != nil {
		t.Fatal(err)
	}
	// Anyone may set up a session to A's public key; only the server's
	// signature makes the agent accept it.
	for name, c := range map[string]struct {
		opener *envelope.Opener
		b      envelope.Binding
		sealed []byte
	}{
		"sealed for A, opened by B":      {envelope.NewOpener(agentB, pub, "A"), b, sealed},
		"flipped ciphertext":             {envelope.NewOpener(agentA, pub, "A"), b, flipped},
		"flipped signature":              {envelope.NewOpener(agentA, pub, "A"), b, badSig},
		"another step":                   {envelope.NewOpener(agentA, pub, "A"), envelope.Binding{AgentID: "A", StepID: "s9", Attempt: 2}, sealed},
		"another attempt":                {envelope.NewOpener(agentA, pub, "A"), envelope.Binding{AgentID: "A", StepID: "s1", Attempt: 3}, sealed},
		"another agent id":               {envelope.NewOpener(agentA, pub, "B"), envelope.Binding{AgentID: "B", StepID: "s1", Attempt: 2}, sealed},
		"session set up by another":      {envelope.NewOpener(agentA, pub, "A"), b, forged},
		"truncated":                      {envelope.NewOpener(agentA, pub, "A"), b, sealed[:100]},
		"a known session, a forged body": {opener, b, flipped},
	} {
		if _, err := c.opener.Open(c.b, c.sealed); !errors.Is(err, envelope.ErrRejected) {
			t.Errorf("%s: %v, want ErrRejected", name, err)
		}
	}
}

// A new agent key (the agent registered again) gets a new session.
func TestSessionFollowsTheAgentKey(t *testing.T) {
	t.Parallel()
	server, agentA := keys(t)
	newKey, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sessions := envelope.NewSessions(server)
	b := envelope.Binding{AgentID: "A", StepID: "s1", Attempt: 1}
	if _, err := sessions.Seal(agentA.PublicKey().Bytes(), b, []byte("x")); err != nil {
		t.Fatal(err)
	}
	sealed, err := sessions.Seal(newKey.PublicKey().Bytes(), b, []byte("y"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := envelope.NewOpener(newKey, server.Public().(ed25519.PublicKey), "A").Open(b, sealed)
	if err != nil || string(got) != "y" {
		t.Fatalf("open under the new key: %q %v", got, err)
	}
}

func FuzzOpenSession(f *testing.F) {
	_, server, _ := ed25519.GenerateKey(rand.Reader)
	agent, _ := ecdh.X25519().GenerateKey(rand.Reader)
	b := envelope.Binding{AgentID: "A", StepID: "s", Attempt: 1}
	sealed, _ := envelope.NewSessions(server).Seal(agent.PublicKey().Bytes(), b, []byte("payload"))
	f.Add(sealed)
	f.Add([]byte{})
	opener := envelope.NewOpener(agent, server.Public().(ed25519.PublicKey), "A")
	f.Fuzz(func(t *testing.T, data []byte) {
		if got, err := opener.Open(b, data); err == nil && string(got) != "payload" {
			t.Fatalf("opened forged data to %q", got)
		}
	})
}
