// Package mask hides secret values in step output before it leaves the
// agent (and, later, again on the server). Besides each secret as written,
// it hides each line of a multi-line secret and the forms a step is likely
// to print it in: base64 (standard and URL-safe, at all three byte
// alignments, so a secret embedded in a longer encoded blob is caught too),
// URL query and path escaping, JSON string escaping and double-quoted
// escaping.
package mask

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// MinSecretLength is the shortest secret worth masking: shorter values
// would hide ordinary text all over the log.
const MinSecretLength = 6

// minPattern is the shortest derived form that is masked.
const minPattern = 4

// Replacement is what a masked value becomes.
const Replacement = "***"

// Masker replaces every form of a set of secrets. The set can grow while
// output is masked (AddSecret); every method is safe for concurrent use.
type Masker struct {
	mu       sync.RWMutex
	patterns [][]byte // longest first
	seen     map[string]bool
}

// New returns a Masker for the secrets; values shorter than
// MinSecretLength are ignored (the server refuses to store them).
func New(secrets []string) *Masker {
	m := &Masker{seen: map[string]bool{}}
	for _, s := range secrets {
		m.add(s)
	}
	m.sort()
	return m
}

// ErrTooShort is returned by AddSecret for a value shorter than
// MinSecretLength.
var ErrTooShort = errors.New("too short to mask")

// AddSecret masks s, in every form New would, in everything masked from
// now on, including what a Writer holds and has not yet passed on. A value
// shorter than MinSecretLength is refused with ErrTooShort: masking it would
// hide ordinary text all over the log. The error never contains s.
func (m *Masker) AddSecret(s string) error {
	if len(s) < MinSecretLength {
		return fmt.Errorf("a value of %d characters is %w: secrets need at least %d", len(s), ErrTooShort, MinSecretLength)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.add(s)
	m.sort()
	return nil
}

// add adds the patterns of secret s; the caller holds the lock (or owns m)
// and sorts afterwards.
func (m *Masker) add(s string) {
	if len(s) < MinSecretLength {
		return
	}
	for _, v := range append([]string{s}, strings.Split(s, "\n")...) {
		v = strings.TrimRight(v, "\r")
		if len(v) < minPattern {
			continue
		}
		for _, f := range forms(v) {
			if len(f) >= minPattern && !m.seen[f] {
				m.seen[f] = true
				m.patterns = append(m.patterns, []byte(f))
			}
		}
	}
}

// sort puts the longest patterns first, so a longer form is replaced
// before a shorter one inside it.
func (m *Masker) sort() {
	sort.SliceStable(m.patterns, func(i, j int) bool { return len(m.patterns[i]) > len(m.patterns[j]) })
}

// forms returns v and its encoded forms.
func forms(v string) []string {
	out := []string{v, url.QueryEscape(v), url.PathEscape(v)}
	if b, err := json.Marshal(v); err == nil {
		out = append(out, string(b[1:len(b)-1]))
	}
	q := strconv.Quote(v)
	out = append(out, q[1:len(q)-1])
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		for k := 0; k < 3; k++ {
			out = append(out, aligned(enc, v, k))
		}
	}
	return out
}

// aligned is the part of the base64 of v, preceded by k other bytes, that
// depends on v's bytes only: it appears in the encoding of any text that
// holds v at a byte offset ≡ k (mod 3).
func aligned(enc *base64.Encoding, v string, k int) string {
	full := enc.EncodeToString(append(make([]byte, k), v...))
	n := k + len(v)
	start := (8*k + 5) / 6 // first char whose 6 bits all come from v
	end := 8 * n / 6       // chars after this take bits from what follows
	if end <= start {
		return ""
	}
	return full[start:end]
}

// Empty reports whether there is nothing to mask (yet).
func (m *Masker) Empty() bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.patterns) == 0
}

// Mask returns b with every pattern replaced.
func (m *Masker) Mask(b []byte) []byte {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, p := range m.patterns {
		if bytes.Contains(b, p) {
			b = bytes.ReplaceAll(b, p, []byte(Replacement))
		}
	}
	return b
}

// flushAt is how much unterminated output a Writer holds before it passes
// it on (masked) anyway.
const flushAt = 64 << 10

// Writer masks a stream line by line, so a secret split across writes is
// still found. Flush passes on what is held. While its Masker is empty a
// Writer passes everything on at once, so a secret added later (AddSecret)
// is masked in what is written after it was added. A Writer is used by one
// goroutine at a time; its Masker may grow from any.
type Writer struct {
	m   *Masker
	w   io.Writer
	buf []byte
}

// NewWriter returns a Writer that masks into w.
func (m *Masker) NewWriter(w io.Writer) *Writer { return &Writer{m: m, w: w} }

// Write masks every complete line and holds the rest.
func (mw *Writer) Write(p []byte) (int, error) {
	if mw.m.Empty() {
		return mw.w.Write(p)
	}
	mw.buf = append(mw.buf, p...)
	end := bytes.LastIndexByte(mw.buf, '\n') + 1
	if end == 0 && len(mw.buf) >= flushAt {
		end = len(mw.buf)
	}
	if end > 0 {
		out := mw.m.Mask(mw.buf[:end])
		mw.buf = append(mw.buf[:0], mw.buf[end:]...)
		if _, err := mw.w.Write(out); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Flush passes on what is held, masked.
func (mw *Writer) Flush() error {
	if len(mw.buf) == 0 {
		return nil
	}
	_, err := mw.w.Write(mw.m.Mask(mw.buf))
	mw.buf = mw.buf[:0]
	return err
}
