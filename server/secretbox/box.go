// Package secretbox seals project secrets for storage with AES-256-GCM. The
// ciphertext is bound to the project and name it was stored under, so a
// sealed value copied to another slot does not open.
package secretbox

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Box seals and opens secret values.
type Box struct{ aead cipher.AEAD }

// New returns a Box for a 32-byte key.
func New(key []byte) (*Box, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("secret key must be 32 bytes, not %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Box{aead: aead}, nil
}

// LoadOrCreateKey reads a base64 key file, creating it (0600) with a random
// key on first use.
func LoadOrCreateKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key := make([]byte, 32)
		rand.Read(key)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("secret key: %w", err)
		}
		defer f.Close()
		if _, err := f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n"); err != nil {
			return nil, fmt.Errorf("secret key: %w", err)
		}
		return key, f.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != 32 {
		return nil, fmt.Errorf("secret key %s is not 32 bytes of base64", path)
	}
	return key, nil
}

func aad(project, name string) []byte { return []byte("baton-secret/v1\x00" + project + "\x00" + name) }

// Seal encrypts value for the slot project/name: nonce followed by ciphertext.
func (b *Box) Seal(project, name string, value []byte) []byte {
	nonce := make([]byte, b.aead.NonceSize())
	rand.Read(nonce)
	return b.aead.Seal(nonce, nonce, value, aad(project, name))
}

// Open decrypts what Seal returned for the same slot.
func (b *Box) Open(project, name string, sealed []byte) ([]byte, error) {
	n := b.aead.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("sealed secret is too short")
	}
	value, err := b.aead.Open(nil, sealed[:n], sealed[n:], aad(project, name))
	if err != nil {
		return nil, fmt.Errorf("secret %s/%s does not open with this server's key", project, name)
	}
	return value, nil
}
