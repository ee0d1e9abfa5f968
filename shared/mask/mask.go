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
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// MinSecretLength is the shortest secret worth masking: shorter values
// would hide ordinary text all over the log.
const MinSecretLength = 6

// minPattern is the shortest derived form that is masked.
const minPattern = 4

// Replacement is what a masked value becomes.
const Replacement = "***"

// Masker replaces every form of a set of secrets.
type Masker struct {
	patterns [][]byte // longest first
}

// New returns a Masker for the secrets; values shorter than
// MinSecretLength are ignored (the server refuses to store them).
func New(secrets []string) *Masker {
	seen := map[string]bool{}
	m := &Masker{}
	add := func(p string) {
		if len(p) >= minPattern && !seen[p] {
			seen[p] = true
			m.patterns = append(m.patterns, []byte(p))
		}
	}
	for _, s := range secrets {
		if len(s) < MinSecretLength {
			continue
		}
		for _, v := range append([]string{s}, strings.Split(s, "\n")...) {
			v = strings.TrimRight(v, "\r")
			if len(v) < minPattern {
				continue
			}
			for _, f := range forms(v) {
				add(f)
			}
		}
	}
	sort.Slice(m.patterns, func(i, j int) bool { return len(m.patterns[i]) > len(m.patterns[j]) })
	return m
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

// Empty reports whether there is nothing to mask.
func (m *Masker) Empty() bool { return len(m.patterns) == 0 }

// Mask returns b with every pattern replaced.
func (m *Masker) Mask(b []byte) []byte {
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
// still found. Close (or Flush) passes on what is held.
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
