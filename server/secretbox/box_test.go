package secretbox_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/baton-ci/baton/server/secretbox"
)

func TestSealOpen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "secrets.key")
	key, err := secretbox.LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	again, err := secretbox.LoadOrCreateKey(path)
	if err != nil || !bytes.Equal(key, again) {
		t.Fatalf("key not reused: %v", err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %o", fi.Mode().Perm())
	}
	box, err := secretbox.New(key)
	if err != nil {
		t.Fatal(err)
	}
	sealed := box.Seal("web", "TOKEN", []byte("s3cr3t-value"))
	if bytes.Contains(sealed, []byte("s3cr3t-value")) {
		t.Fatal("plaintext in the sealed value")
	}
	if v, err := box.Open("web", "TOKEN", sealed); err != nil || string(v) != "s3cr3t-value" {
		t.Fatalf("open: %q %v", v, err)
	}
	if _, err := box.Open("api", "TOKEN", sealed); err == nil {
		t.Error("a value sealed for web/TOKEN opened as api/TOKEN")
	}
	flipped := append([]byte(nil), sealed...)
	flipped[len(flipped)-1] ^= 1
	if _, err := box.Open("web", "TOKEN", flipped); err == nil {
		t.Error("a flipped byte went unnoticed")
	}
	other, _ := secretbox.New(bytes.Repeat([]byte{7}, 32))
	if _, err := other.Open("web", "TOKEN", sealed); err == nil {
		t.Error("opened with another key")
	}
}
