package agent

import (
	"bytes"
	"io"
	"sort"
	"strings"
)

// maskFlush is how much unterminated output the masker holds before it
// passes it on (masked) anyway.
const maskFlush = 64 << 10

// masker replaces secret values in a step's output with "***" before it
// leaves the agent. It works line by line so a secret split across writes is
// still found; each line of a multi-line secret is masked on its own.
// (Encoded forms and a server-side second pass come with issue 5.)
type masker struct {
	w        io.Writer
	patterns [][]byte // longest first
	buf      []byte
}

func newMasker(w io.Writer, secrets map[string]string) *masker {
	m := &masker{w: w}
	seen := map[string]bool{}
	for _, v := range secrets {
		for _, line := range strings.Split(v, "\n") {
			if line = strings.TrimRight(line, "\r"); len(line) >= 4 && !seen[line] {
				seen[line] = true
				m.patterns = append(m.patterns, []byte(line))
			}
		}
	}
	sort.Slice(m.patterns, func(i, j int) bool { return len(m.patterns[i]) > len(m.patterns[j]) })
	return m
}

func (m *masker) mask(b []byte) []byte {
	for _, p := range m.patterns {
		b = bytes.ReplaceAll(b, p, []byte("***"))
	}
	return b
}

// Write masks every complete line and holds the rest.
func (m *masker) Write(p []byte) (int, error) {
	if len(m.patterns) == 0 {
		return m.w.Write(p)
	}
	m.buf = append(m.buf, p...)
	end := bytes.LastIndexByte(m.buf, '\n') + 1
	if end == 0 && len(m.buf) >= maskFlush {
		end = len(m.buf)
	}
	if end > 0 {
		out := m.mask(m.buf[:end])
		m.buf = append(m.buf[:0], m.buf[end:]...)
		if _, err := m.w.Write(out); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Flush passes on what is held, masked.
func (m *masker) Flush() error {
	if len(m.buf) == 0 {
		return nil
	}
	_, err := m.w.Write(m.mask(m.buf))
	m.buf = m.buf[:0]
	return err
}
