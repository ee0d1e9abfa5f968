package mask_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/baton-ci/baton/shared/mask"
)

// A secret added mid-stream is masked in everything written after it,
// also when it is split across writes and when a line was held when it
// came; what was passed on before stays as it was.
func TestAddSecretMidStream(t *testing.T) {
	t.Parallel()
	const secret = "runtime-s3cr3t"
	for _, start := range [][]string{nil, {"known-secret-1"}} {
		m := mask.New(start)
		var out bytes.Buffer
		w := m.NewWriter(&out)
		w.Write([]byte("before: runtime-s3cr3t is not a secret yet\n"))
		w.Write([]byte("held: runtime-")) // unterminated; held only if the masker has secrets
		if err := m.AddSecret(secret); err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("s3cr3t end\n"))
		for _, chunk := range []string{"after: x runt", "ime-s3", "cr3t y ", base64.StdEncoding.EncodeToString([]byte("a " + secret + " b")), "\nla", "st run", "time-s3cr3", "t"} {
			w.Write([]byte(chunk))
		}
		w.Flush()
		got := out.String()
		before, after, ok := strings.Cut(got, "after:")
		if !ok {
			t.Fatalf("output %q", got)
		}
		if !strings.HasPrefix(before, "before: runtime-s3cr3t is not a secret yet\n") {
			t.Errorf("output before AddSecret changed: %q", before)
		}
		if strings.Contains(after, "runtime") || strings.Contains(after, "s3cr3t") || leaks(after, secret) {
			t.Errorf("secret leaks after AddSecret: %q", after)
		}
		if want := "after: x *** y "; !strings.HasPrefix(after, " x *** y ") {
			t.Errorf("output after AddSecret %q, want it to start %q", after, want)
		}
		if !strings.HasSuffix(after, "\nlast ***") {
			t.Errorf("output %q, want the split secret on the last line masked", after)
		}
		if len(start) > 0 && !strings.Contains(before, "held: *** end\n") {
			t.Errorf("a held line was not masked with the secret added while it was held: %q", before)
		}
	}
}

func TestAddSecretRefusesShortValues(t *testing.T) {
	t.Parallel()
	m := mask.New(nil)
	err := m.AddSecret("abc12")
	if !errors.Is(err, mask.ErrTooShort) || strings.Contains(err.Error(), "abc12") || !strings.Contains(err.Error(), "at least 6") {
		t.Errorf("AddSecret(5 characters) = %v, want ErrTooShort naming the minimum and not the value", err)
	}
	if !m.Empty() {
		t.Error("a refused value was added")
	}
	if err := m.AddSecret("abc123"); err != nil || m.Empty() {
		t.Errorf("AddSecret(6 characters) = %v", err)
	}
}

// Secrets may be added while another goroutine writes (run with -race).
func TestAddSecretConcurrentWithWrites(t *testing.T) {
	t.Parallel()
	m := mask.New(nil)
	var out bytes.Buffer
	w := m.NewWriter(&out)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; i < 2000; i++ {
			w.Write([]byte("some output line secret-value-7\n"))
		}
	})
	wg.Go(func() {
		for i := 0; i < 50; i++ {
			m.AddSecret(fmt.Sprintf("other-secret-%d", i))
		}
		m.AddSecret("secret-value-7")
	})
	wg.Wait()
	w.Flush()
	w.Write([]byte("secret-value-7\n"))
	if !strings.HasSuffix(out.String(), "\n***\n") {
		t.Error("a secret added concurrently is not masked afterwards")
	}
}
