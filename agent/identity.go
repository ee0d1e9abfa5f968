package agent

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/uuid"
)

// Identity is who an agent is: a UUID, an Ed25519 key that signs its access
// token requests, and an X25519 key that payloads can be sealed to. It is
// generated on first start and kept in the state dir (0600).
type Identity struct {
	ID      string
	Signing ed25519.PrivateKey
	HPKE    *ecdh.PrivateKey
}

type identityFile struct {
	ID          string `json:"id"`
	SigningSeed []byte `json:"signing_seed"`
	HPKEKey     []byte `json:"hpke_key"`
}

const identityFileName = "identity.json"

// LoadOrCreateIdentity reads the identity in dir, creating dir (0700) and a
// new identity (0600) on first start.
func LoadOrCreateIdentity(dir string) (*Identity, error) {
	path := filepath.Join(dir, identityFileName)
	b, err := os.ReadFile(path)
	if err == nil {
		return parseIdentity(path, b)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read identity: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	seed := make([]byte, ed25519.SeedSize)
	rand.Read(seed)
	hpkeKey, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	f := identityFile{ID: uuid.NewString(), SigningSeed: seed, HPKEKey: hpkeKey.Bytes()}
	b, err = json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, err
	}
	// Write then rename so a crash never leaves half an identity behind.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return nil, fmt.Errorf("write identity: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("write identity: %w", err)
	}
	return parseIdentity(path, b)
}

func parseIdentity(path string, b []byte) (*Identity, error) {
	var f identityFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("identity %s is corrupt: %w", path, err)
	}
	if uuid.Validate(f.ID) != nil || len(f.SigningSeed) != ed25519.SeedSize {
		return nil, fmt.Errorf("identity %s is corrupt: bad id or signing key", path)
	}
	hpkeKey, err := ecdh.X25519().NewPrivateKey(f.HPKEKey)
	if err != nil {
		return nil, fmt.Errorf("identity %s is corrupt: %w", path, err)
	}
	return &Identity{ID: f.ID, Signing: ed25519.NewKeyFromSeed(f.SigningSeed), HPKE: hpkeKey}, nil
}

// SigningPublic returns the public half of the signing key.
func (id *Identity) SigningPublic() []byte { return id.Signing.Public().(ed25519.PublicKey) }

// HPKEPublic returns the public half of the payload key.
func (id *Identity) HPKEPublic() []byte { return id.HPKE.PublicKey().Bytes() }
