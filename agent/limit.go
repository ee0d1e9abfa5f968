package agent

import (
	"fmt"
	"io"
)

// DefaultLogLimit is how much of a step's output is kept: the head streams
// as it comes, and past the limit only the last tailKeep bytes are kept and
// sent when the step ends, after a line that says what was left out.
const DefaultLogLimit = 64 << 20

const tailKeep = 1 << 20

// limitWriter passes the first limit-tailKeep bytes through, then keeps a
// ring of the last tailKeep bytes for Flush.
type limitWriter struct {
	w       io.Writer
	head    int64 // bytes still allowed through
	ring    []byte
	pos     int // next write position in ring once it is full
	omitted int64
	limit   int64
}

func newLimitWriter(w io.Writer, limit int64) *limitWriter {
	if limit == 0 {
		limit = DefaultLogLimit
	}
	if limit <= tailKeep {
		limit = 2 * tailKeep
	}
	return &limitWriter{w: w, head: limit - tailKeep, limit: limit}
}

func (l *limitWriter) Write(p []byte) (int, error) {
	n := len(p)
	if l.head > 0 {
		k := min(int64(len(p)), l.head)
		if _, err := l.w.Write(p[:k]); err != nil {
			return 0, err
		}
		l.head -= k
		p = p[k:]
	}
	for len(p) > 0 { // past the head: keep the last tailKeep bytes
		if len(l.ring) < tailKeep {
			k := min(len(p), tailKeep-len(l.ring))
			l.ring = append(l.ring, p[:k]...)
			p = p[k:]
			continue
		}
		k := min(len(p), tailKeep-l.pos)
		l.omitted += int64(k)
		copy(l.ring[l.pos:], p[:k])
		l.pos = (l.pos + k) % tailKeep
		p = p[k:]
	}
	return n, nil
}

// Flush sends the kept tail, saying how much was left out before it.
func (l *limitWriter) Flush() error {
	if len(l.ring) == 0 {
		return nil
	}
	if l.omitted > 0 {
		if _, err := fmt.Fprintf(l.w, "\n[baton: %d bytes of output left out here: the step's log keeps the first %d and the last %d bytes]\n",
			l.omitted, l.limit-tailKeep, tailKeep); err != nil {
			return err
		}
	}
	if _, err := l.w.Write(l.ring[l.pos:]); err != nil {
		return err
	}
	_, err := l.w.Write(l.ring[:l.pos])
	l.ring, l.pos = nil, 0
	return err
}
