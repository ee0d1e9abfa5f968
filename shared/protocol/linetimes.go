package protocol

import (
	"fmt"
	"strconv"
	"strings"
)

// LineTime says when the line starting at Offset (bytes into a log chunk)
// was written, in Unix milliseconds. Lines that follow share it until the
// next LineTime: the agent records one only when the time moved on.
type LineTime struct {
	Offset int
	At     int64
}

// MaxLineTimes bounds the line times one chunk carries.
const MaxLineTimes = 1000

// FormatLineTimes encodes line times for the `times` query parameter of a
// log upload: "offset:unixms,offset:unixms".
func FormatLineTimes(times []LineTime) string {
	var b strings.Builder
	for i, t := range times {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(t.Offset))
		b.WriteByte(':')
		b.WriteString(strconv.FormatInt(t.At, 10))
	}
	return b.String()
}

// ParseLineTimes decodes FormatLineTimes for a chunk of chunkLen bytes:
// offsets must increase and lie within the chunk.
func ParseLineTimes(s string, chunkLen int) ([]LineTime, error) {
	if s == "" {
		return nil, nil
	}
	parts := strings.Split(s, ",")
	if len(parts) > MaxLineTimes {
		return nil, fmt.Errorf("%d line times; the limit is %d", len(parts), MaxLineTimes)
	}
	out := make([]LineTime, 0, len(parts))
	for _, p := range parts {
		off, at, ok := strings.Cut(p, ":")
		o, err1 := strconv.Atoi(off)
		a, err2 := strconv.ParseInt(at, 10, 64)
		if !ok || err1 != nil || err2 != nil || o < 0 || o >= max(chunkLen, 1) || a <= 0 {
			return nil, fmt.Errorf("line time %q: want offset:unixms with the offset inside the chunk", p)
		}
		if len(out) > 0 && o <= out[len(out)-1].Offset {
			return nil, fmt.Errorf("line time %q: offsets must increase", p)
		}
		out = append(out, LineTime{Offset: o, At: a})
	}
	return out, nil
}
