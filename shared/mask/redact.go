package mask

import "bytes"

// Redact overwrites, in place, every occurrence of every form of the
// secrets with '*' bytes, keeping b's length: the server's second pass uses
// it on stored log chunks, whose byte offsets must not move.
func (m *Masker) Redact(b []byte) {
	for _, p := range m.patterns {
		for i := 0; ; {
			j := bytes.Index(b[i:], p)
			if j < 0 {
				break
			}
			start := i + j
			for k := start; k < start+len(p); k++ {
				b[k] = '*'
			}
			i = start + len(p)
		}
	}
}

// Longest is the length of the longest form masked (0 when none): a
// secret split across two pieces of output lies within this many bytes of
// their boundary.
func (m *Masker) Longest() int {
	if len(m.patterns) == 0 {
		return 0
	}
	return len(m.patterns[0])
}
