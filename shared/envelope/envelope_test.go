package envelope_test

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/baton-ci/baton/shared/envelope"
)

func keys(t *testing.T) (ed25519.PrivateKey, *ecdh.PrivateKey) {
	t.Helper()
	_, server, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	agent, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return server, agent
}

func TestSealOpen(t *testing.T) {
	t.Parallel()
	server, agentA := keys(t)
	_, agentB := keys(t)
	otherServer, _ := keys(t)
	b := envelope.Binding{AgentID: "A", StepID: "s1", Attempt: 2}
	payload := []byte(`{"command":"deploy","secrets":{"TOKEN":"x"}}`)
	sealed, err := envelope.Seal(server, agentA.PublicKey().Bytes(), b, payload)
	if err != nil {
		t.Fatal(err)
	}
	pub := server.Public().(ed25519.PublicKey)
	got, err := envelope.Open(agentA, pub, b, sealed)
	if err != nil || string(got) != string(payload) {
		t.Fatalf("open: %q %v", got, err)
	}
	flipped := append([]byte(nil), sealed...)
	flipped[len(flipped)/2] ^= 1
	forged, err := envelope.Seal(otherServer, agentA.PublicKey().Bytes(), b, payload)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		key    *ecdh.PrivateKey
		server ed25519.PublicKey
		b      envelope.Binding
		sealed []byte
	}{
		"sealed for A, opened by B": {agentB, pub, b, sealed},
		"flipped byte":              {agentA, pub, b, flipped},
		"another step":              {agentA, pub, envelope.Binding{AgentID: "A", StepID: "s2", Attempt: 2}, sealed},
		"another attempt":           {agentA, pub, envelope.Binding{AgentID: "A", StepID: "s1", Attempt: 3}, sealed},
		"another agent id":          {agentA, pub, envelope.Binding{AgentID: "B", StepID: "s1", Attempt: 2}, sealed},
		"signed by another server":  {agentA, pub, b, forged},
		"truncated":                 {agentA, pub, b, sealed[:20]},
	} {
		if _, err := envelope.Open(c.key, c.server, c.b, c.sealed); !errors.Is(err, envelope.ErrRejected) {
			t.Errorf("%s: %v, want ErrRejected", name, err)
		}
	}
}

func FuzzOpen(f *testing.F) {
	_, server, _ := ed25519.GenerateKey(rand.Reader)
	agent, _ := ecdh.X25519().GenerateKey(rand.Reader)
	b := envelope.Binding{AgentID: "A", StepID: "s", Attempt: 1}
	sealed, _ := envelope.Seal(server, agent.PublicKey().Bytes(), b, []byte("payload"))
	f.Add(sealed)
	f.Add([]byte{})
	pub := server.Public().(ed25519.PublicKey)
	f.Fuzz(func(t *testing.T, data []byte) {
		if got, err := envelope.Open(agent, pub, b, data); err == nil && string(got) != "payload" {
			t.Fatalf("opened forged data to %q", got)
		}
	})
}
