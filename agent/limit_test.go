package agent

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

func TestLimitWriterKeepsHeadAndTail(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	limit := int64(3 * tailKeep)
	l := newLimitWriter(&out, limit)
	var in bytes.Buffer
	for i := 0; in.Len() < 5*tailKeep; i++ {
		fmt.Fprintf(&in, "line %d\n", i)
	}
	data := in.Bytes()
	for p := data; len(p) > 0; {
		n := min(len(p), 4093)
		l.Write(p[:n])
		p = p[n:]
	}
	l.Flush()
	head := int(limit - tailKeep)
	got := out.Bytes()
	if !bytes.Equal(got[:head], data[:head]) {
		t.Fatal("the head was not passed through unchanged")
	}
	if !bytes.HasSuffix(got, data[len(data)-tailKeep:]) {
		t.Fatal("the tail is not the last bytes of the output")
	}
	omitted := len(data) - head - tailKeep
	if !strings.Contains(string(got), fmt.Sprintf("[baton: %d bytes of output left out here", omitted)) {
		t.Fatalf("no note of the %d omitted bytes", omitted)
	}
	out.Reset()
	small := newLimitWriter(&out, limit)
	small.Write([]byte("short\n"))
	small.Flush()
	if out.String() != "short\n" {
		t.Errorf("output under the limit changed: %q", out.String())
	}
}
