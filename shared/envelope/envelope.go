// Package envelope protects a step's payload on its way from the server to
// the agent that reserved it: the server signs it with its Ed25519 key and
// seals it with HPKE (RFC 9180: DHKEM(X25519), HKDF-SHA256,
// ChaCha20-Poly1305; crypto/hpke) to the agent's X25519 key. The HPKE info
// binds the ciphertext to the agent, the step and the attempt, so a payload
// cannot be replayed to another agent, step or attempt; the signature proves
// it came from the server (HPKE base mode does not authenticate the sender).
package envelope

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"errors"
	"fmt"
	"strconv"
)

// Binding is what a sealed payload is for.
type Binding struct {
	AgentID string
	StepID  string
	Attempt int
}

func (b Binding) info() []byte {
	return []byte("baton-payload/v1\x00" + b.AgentID + "\x00" + b.StepID + "\x00" + strconv.Itoa(b.Attempt))
}

func suite() (hpke.KDF, hpke.AEAD) { return hpke.HKDFSHA256(), hpke.ChaCha20Poly1305() }

// ErrRejected wraps every reason Open refuses a payload.
var ErrRejected = errors.New("payload rejected")

// Seal signs payload with the server's key and seals it to the agent's
// X25519 public key for binding.
func Seal(server ed25519.PrivateKey, agentKey []byte, b Binding, payload []byte) ([]byte, error) {
	pk, err := hpkeKey(agentKey)
	if err != nil {
		return nil, err
	}
	info := b.info()
	sig := ed25519.Sign(server, append(append([]byte{}, info...), payload...))
	kdf, aead := suite()
	return hpke.Seal(pk, kdf, aead, info, append(sig, payload...))
}

// hpkeKey is the agent's X25519 public key as HPKE's DHKEM key.
func hpkeKey(agentKey []byte) (hpke.PublicKey, error) {
	pub, err := ecdh.X25519().NewPublicKey(agentKey)
	if err != nil {
		return nil, fmt.Errorf("agent key: %w", err)
	}
	return hpke.NewDHKEMPublicKey(pub)
}

// Open opens a sealed payload with the agent's key, for binding, and checks
// the server's signature. Any failure is an ErrRejected.
func Open(agentKey *ecdh.PrivateKey, server ed25519.PublicKey, b Binding, sealed []byte) ([]byte, error) {
	k, err := hpke.NewDHKEMPrivateKey(agentKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRejected, err)
	}
	info := b.info()
	kdf, aead := suite()
	plain, err := hpke.Open(k, kdf, aead, info, sealed)
	if err != nil {
		return nil, fmt.Errorf("%w: it does not open with this agent's key for step %s attempt %d", ErrRejected, b.StepID, b.Attempt)
	}
	if len(plain) < ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: too short", ErrRejected)
	}
	sig, payload := plain[:ed25519.SignatureSize], plain[ed25519.SignatureSize:]
	if len(server) != ed25519.PublicKeySize || !ed25519.Verify(server, append(append([]byte{}, info...), payload...), sig) {
		return nil, fmt.Errorf("%w: not signed by the server", ErrRejected)
	}
	return payload, nil
}
