package envelope

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Session envelopes: Seal costs an X25519 key pair, a key exchange and an
// Ed25519 signature per payload, and Open a key exchange and a
// verification, about a tenth of the server's CPU (and most of a busy
// agent's) when steps are short. A session does that once per agent per
// rotation instead: the server sets up an HPKE context to the agent's key
// in export-only mode, signs its encapsulated key, and seals each payload
// with AES-256-GCM under the exported key, a random nonce, and the binding
// as additional data. Only the server and the agent can derive the key,
// so the AEAD proves the server sealed it; the signature proves the
// session is the server's (anyone knowing the agent's public key could set
// one up). The binding still ties a payload to its agent, step and
// attempt.
//
// Layout: encapsulated key (32 bytes) | signature (64) | nonce (12) |
// ciphertext. An agent says it can open these (protocol.HeaderEnvelope);
// a reservation says which form it carries.

const (
	encSize       = 32 // DHKEM(X25519) encapsulated key
	nonceSize     = 12
	sessionPrefix = "baton-session/v1\x00"
	exportLabel   = "baton payload key"
)

// SessionTTL and SessionUses bound a session: a new one is set up after
// either (random nonces stay far below GCM's limit, and a leaked key
// exposes a bounded stretch of payloads).
const (
	SessionTTL  = time.Hour
	SessionUses = 1 << 20
)

func sessionInfo(agentID string) []byte { return []byte(sessionPrefix + agentID) }

func sessionSigned(agentID string, enc []byte) []byte {
	return append([]byte(sessionPrefix+agentID+"\x00"), enc...)
}

func sessionAAD(b Binding) []byte {
	return []byte("baton-payload/session\x00" + b.AgentID + "\x00" + b.StepID + "\x00" + strconv.Itoa(b.Attempt))
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Sessions seals payloads under one session per agent. Safe for
// concurrent use.
type Sessions struct {
	signing ed25519.PrivateKey
	now     func() time.Time

	mu sync.Mutex
	m  map[string]*session // agent id ->
}

type session struct {
	agentKey []byte // the key it was set up for
	header   []byte // encapsulated key | signature
	aead     cipher.AEAD
	expires  time.Time
	uses     atomic.Int64
}

// NewSessions returns the sessions of a server that signs with signing.
func NewSessions(signing ed25519.PrivateKey) *Sessions {
	return &Sessions{signing: signing, now: time.Now, m: map[string]*session{}}
}

// Seal seals payload for the agent with X25519 key agentKey, for binding,
// in the agent's current session.
func (s *Sessions) Seal(agentKey []byte, b Binding, payload []byte) ([]byte, error) {
	sess, err := s.current(agentKey, b.AgentID)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(sess.header)+nonceSize+len(payload)+sess.aead.Overhead())
	out = append(out, sess.header...)
	nonce := make([]byte, nonceSize)
	rand.Read(nonce)
	out = append(out, nonce...)
	return sess.aead.Seal(out, nonce, payload, sessionAAD(b)), nil
}

// current returns the agent's session, setting up a new one when there is
// none, it has expired or been used enough, or the agent's key changed.
func (s *Sessions) current(agentKey []byte, agentID string) (*session, error) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess := s.m[agentID]; sess != nil && now.Before(sess.expires) && sess.uses.Add(1) <= SessionUses &&
		subtle.ConstantTimeCompare(sess.agentKey, agentKey) == 1 {
		return sess, nil
	}
	pk, err := hpkeKey(agentKey)
	if err != nil {
		return nil, err
	}
	enc, sender, err := hpke.NewSender(pk, hpke.HKDFSHA256(), hpke.ExportOnly(), sessionInfo(agentID))
	if err != nil {
		return nil, err
	}
	key, err := sender.Export(exportLabel, 32)
	if err != nil {
		return nil, err
	}
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	sess := &session{agentKey: append([]byte(nil), agentKey...), aead: aead, expires: now.Add(SessionTTL),
		header: append(append([]byte(nil), enc...), ed25519.Sign(s.signing, sessionSigned(agentID, enc))...)}
	sess.uses.Store(1)
	s.m[agentID] = sess
	return sess, nil
}

// Opener opens session envelopes for one agent, remembering the keys of
// the sessions it has seen. Safe for concurrent use.
type Opener struct {
	key     *ecdh.PrivateKey
	server  ed25519.PublicKey
	agentID string

	mu   sync.Mutex
	keys map[string]cipher.AEAD // encapsulated key ->
}

// maxOpenerSessions bounds the sessions an Opener remembers (the server
// has one per agent at a time; a replica restarting sets up another).
const maxOpenerSessions = 8

// NewOpener returns the Opener of the agent agentID with X25519 key key,
// for payloads of the server with public key server.
func NewOpener(key *ecdh.PrivateKey, server ed25519.PublicKey, agentID string) *Opener {
	return &Opener{key: key, server: server, agentID: agentID, keys: map[string]cipher.AEAD{}}
}

// Open opens a session envelope for binding. Any failure is an
// ErrRejected.
func (o *Opener) Open(b Binding, sealed []byte) ([]byte, error) {
	if b.AgentID != o.agentID {
		return nil, fmt.Errorf("%w: for agent %s, not this one", ErrRejected, b.AgentID)
	}
	if len(sealed) < encSize+ed25519.SignatureSize+nonceSize {
		return nil, fmt.Errorf("%w: too short", ErrRejected)
	}
	enc, sig := sealed[:encSize], sealed[encSize:encSize+ed25519.SignatureSize]
	nonce := sealed[encSize+ed25519.SignatureSize : encSize+ed25519.SignatureSize+nonceSize]
	body := sealed[encSize+ed25519.SignatureSize+nonceSize:]
	aead, err := o.session(enc, sig)
	if err != nil {
		return nil, err
	}
	plain, err := aead.Open(nil, nonce, body, sessionAAD(b))
	if err != nil {
		return nil, fmt.Errorf("%w: it does not open in its session for step %s attempt %d", ErrRejected, b.StepID, b.Attempt)
	}
	return plain, nil
}

// session returns the key of the session enc, checking the server's
// signature and deriving the key the first time it is seen.
func (o *Opener) session(enc, sig []byte) (cipher.AEAD, error) {
	o.mu.Lock()
	aead := o.keys[string(enc)]
	o.mu.Unlock()
	if aead != nil {
		return aead, nil
	}
	if len(o.server) != ed25519.PublicKeySize || !ed25519.Verify(o.server, sessionSigned(o.agentID, enc), sig) {
		return nil, fmt.Errorf("%w: session not signed by the server", ErrRejected)
	}
	k, err := hpke.NewDHKEMPrivateKey(o.key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRejected, err)
	}
	r, err := hpke.NewRecipient(enc, k, hpke.HKDFSHA256(), hpke.ExportOnly(), sessionInfo(o.agentID))
	if err != nil {
		return nil, fmt.Errorf("%w: session: %v", ErrRejected, err)
	}
	key, err := r.Export(exportLabel, 32)
	if err != nil {
		return nil, fmt.Errorf("%w: session: %v", ErrRejected, err)
	}
	if aead, err = newGCM(key); err != nil {
		return nil, fmt.Errorf("%w: session: %v", ErrRejected, err)
	}
	o.mu.Lock()
	if len(o.keys) >= maxOpenerSessions {
		for k := range o.keys {
			delete(o.keys, k)
			break
		}
	}
	o.keys[string(enc)] = aead
	o.mu.Unlock()
	return aead, nil
}
