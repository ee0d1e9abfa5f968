package mask

import (
	"bytes"
	"encoding/base64"
	"math/rand/v2"
	"testing"
)

// Redact keeps the length and leaves no form of a secret behind, including
// one split across two pieces joined with the tail of the first.
func TestRedactKeepsLengthAndHidesEveryForm(t *testing.T) {
	secret := "hunter2-is-the-password"
	m := New([]string{secret})
	if m.Longest() < len(secret) {
		t.Fatalf("Longest %d < %d", m.Longest(), len(secret))
	}
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 10_000 {
		var text bytes.Buffer
		for text.Len() < 300 {
			switch r.IntN(4) {
			case 0:
				text.WriteString(secret)
			case 1:
				text.WriteString(base64.StdEncoding.EncodeToString([]byte("x" + secret)))
			default:
				text.WriteString("ordinary text\n")
			}
		}
		b := text.Bytes()
		if i == 0 && !bytes.Contains(b, []byte(aligned(base64.RawStdEncoding, secret, 1))) {
			t.Fatal("the test text lacks the encoded form it checks for")
		}
		cut := r.IntN(len(b))
		first, second := append([]byte(nil), b[:cut]...), append([]byte(nil), b[cut:]...)
		m.Redact(first)
		tail := max(0, len(first)-(m.Longest()-1))
		joined := append(append([]byte(nil), first[tail:]...), second...)
		m.Redact(joined)
		got := append(first[:tail:tail], joined...)
		if len(got) != len(b) {
			t.Fatalf("chunking %d: length %d, want %d", i, len(got), len(b))
		}
		if bytes.Contains(got, []byte(secret)) || bytes.Contains(got, []byte(aligned(base64.RawStdEncoding, secret, 1))) {
			t.Fatalf("chunking %d leaks: %q", i, got)
		}
	}
}
