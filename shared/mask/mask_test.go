package mask_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/baton-ci/baton/shared/mask"
)

const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"

func randomText(r *rand.Rand, min, max int) string {
	b := make([]byte, min+r.IntN(max-min+1))
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

// encodings lists the ways a step might print a secret, each followed by a
// check that the masked output no longer reveals it.
func encodings(r *rand.Rand, secret string) []string {
	prefix, suffix := randomText(r, 0, 5), randomText(r, 0, 5)
	q := strconv.Quote(secret)
	j, _ := json.Marshal(map[string]string{"token": secret})
	return []string{
		secret,
		url.QueryEscape(secret),
		url.PathEscape(secret),
		string(j),
		q,
		base64.StdEncoding.EncodeToString([]byte(prefix + secret + suffix)),
		base64.URLEncoding.EncodeToString([]byte(prefix + secret + suffix)),
		base64.RawStdEncoding.EncodeToString([]byte(secret)),
	}
}

// leaks reports whether masked output still shows the secret, directly or
// once its base64 runs are decoded.
func leaks(out, secret string) bool {
	if strings.Contains(out, secret) {
		return true
	}
	for _, field := range strings.FieldsFunc(out, func(r rune) bool { return r == '\n' || r == ' ' || r == '"' }) {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
			if b, err := enc.DecodeString(field); err == nil && bytes.Contains(b, []byte(secret)) {
				return true
			}
		}
	}
	return false
}

// Over 10,000 random secrets, encodings and chunkings, nothing leaks.
func TestMaskingProperty(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(7, 11))
	for i := 0; i < 10000; i++ {
		secret := randomText(r, mask.MinSecretLength, 40)
		m := mask.New([]string{secret})
		var text strings.Builder
		for _, e := range encodings(r, secret) {
			text.WriteString(randomText(r, 0, 8))
			text.WriteString(e)
			text.WriteString("\n")
		}
		var out bytes.Buffer
		w := m.NewWriter(&out)
		in := []byte(text.String())
		for len(in) > 0 {
			n := 1 + r.IntN(min(len(in), 40))
			w.Write(in[:n])
			in = in[n:]
		}
		w.Flush()
		if leaks(out.String(), secret) {
			t.Fatalf("secret %q leaks in\n%s\nmasked:\n%s", secret, text.String(), out.String())
		}
	}
}

func TestMultiLineAndShortSecrets(t *testing.T) {
	t.Parallel()
	m := mask.New([]string{"-----BEGIN KEY-----\nMIIEpAIBAAKCAQEA\n-----END KEY-----", "abc"})
	out := string(m.Mask([]byte("key line MIIEpAIBAAKCAQEA here; abc stays\n")))
	if strings.Contains(out, "MIIEpAIBAAKCAQEA") || !strings.Contains(out, "abc stays") {
		t.Errorf("masked %q", out)
	}
	if !mask.New([]string{"short"}).Empty() {
		t.Error("a secret shorter than 6 characters was taken")
	}
}

func FuzzMask(f *testing.F) {
	f.Add("s3cr3t-value", "prefix s3cr3t-value suffix")
	f.Fuzz(func(t *testing.T, secret, text string) {
		m := mask.New([]string{secret})
		out := string(m.Mask([]byte(text)))
		if len(secret) >= mask.MinSecretLength && strings.Contains(out, secret) {
			t.Fatalf("secret %q survives in %q", secret, out)
		}
	})
}
