package api

import (
	"bytes"
	"time"

	"github.com/baton-ci/baton/server"
	"github.com/baton-ci/baton/shared/protocol"
)

// withTimestamps prefixes every line of log with when it was written
// (RFC 3339, milliseconds, UTC), from the line times the agent sent with
// each chunk; a line with no known time gets a blank column of the same
// width.
func withTimestamps(log []byte, chunks []server.LogChunkTimes) []byte {
	type mark struct {
		offset int64
		at     int64
	}
	var marks []mark
	for _, c := range chunks {
		lts, err := protocol.ParseLineTimes(c.Times, int(^uint(0)>>1))
		if err != nil {
			continue // validated on upload
		}
		for _, lt := range lts {
			marks = append(marks, mark{c.Offset + int64(lt.Offset), lt.At})
		}
	}
	const layout = "2006-01-02T15:04:05.000Z"
	blank := bytes.Repeat([]byte(" "), len(layout))
	var out bytes.Buffer
	out.Grow(len(log) + len(log)/20)
	m, at := 0, int64(0)
	for start := 0; start < len(log); {
		for m < len(marks) && marks[m].offset <= int64(start) {
			at = marks[m].at
			m++
		}
		if at > 0 {
			out.WriteString(time.UnixMilli(at).UTC().Format(layout))
		} else {
			out.Write(blank)
		}
		out.WriteByte(' ')
		end := bytes.IndexByte(log[start:], '\n')
		if end < 0 {
			out.Write(log[start:])
			break
		}
		out.Write(log[start : start+end+1])
		start += end + 1
	}
	return out.Bytes()
}
