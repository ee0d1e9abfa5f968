package runbook_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/baton-ci/baton/shared/runbook"
)

func TestParseOutputs(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in       string
		want     map[string]string
		problems []string
	}{
		{"", map[string]string{}, nil},
		{"version=1.2.3\n", map[string]string{"version": "1.2.3"}, nil},
		{"a=1\r\nb=x=y\n\na=2", map[string]string{"a": "2", "b": "x=y"}, nil},
		{"notes<<EOF\nline one\nline=two\nEOF\nafter=yes\n", map[string]string{"notes": "line one\nline=two", "after": "yes"}, nil},
		{"k=v<<not a heredoc\n", map[string]string{"k": "v<<not a heredoc"}, nil},
		{"junk\n9bad=1\nok=1\n", map[string]string{"ok": "1"},
			[]string{"line 1: want key=value or key<<DELIMITER", `line 2: output name "9bad": use letters, digits, '_' and '-'`}},
		{"doc<<END\nnever closed\n", map[string]string{}, []string{`line 1: doc<<END has no closing "END" line`}},
	}
	for _, c := range cases {
		got, problems := runbook.ParseOutputs([]byte(c.in))
		if !reflect.DeepEqual(got, c.want) || !reflect.DeepEqual(problems, c.problems) {
			t.Errorf("ParseOutputs(%q) = %v, %q; want %v, %q", c.in, got, problems, c.want, c.problems)
		}
	}
}

func TestParseOutputsLimits(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	for i := 0; i <= runbook.MaxOutputs; i++ {
		fmt.Fprintf(&b, "k%d=v\n", i)
	}
	got, problems := runbook.ParseOutputs([]byte(b.String()))
	if len(got) != runbook.MaxOutputs || len(problems) != 1 {
		t.Errorf("%d outputs, problems %q; want %d and one problem", len(got), problems, runbook.MaxOutputs)
	}
	big := "k=" + strings.Repeat("x", runbook.MaxOutputBytes)
	got, problems = runbook.ParseOutputs([]byte(big))
	if len(got["k"]) != runbook.MaxOutputBytes-2 || len(problems) != 1 {
		t.Errorf("oversized file: value of %d bytes, problems %q", len(got["k"]), problems)
	}
}

func FuzzParseOutputs(f *testing.F) {
	for _, s := range []string{"a=1\n", "d<<E\nx\nE\n", "<<\n", "=\n", "k<<\nk\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, _ := runbook.ParseOutputs(data)
		if len(got) > runbook.MaxOutputs {
			t.Fatalf("%d outputs", len(got))
		}
	})
}
