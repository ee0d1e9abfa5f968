package api

import (
	"strings"
	"testing"

	"github.com/baton-ci/baton/server"
)

func TestANSISegments(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []logSegment
	}{
		{"plain\n", []logSegment{{"", "plain\n"}}},
		{"\x1b[1;32mok\x1b[0m done", []logSegment{{"a-f32 a-bold", "ok"}, {"", " done"}}},
		{"<script>alert(1)</script>", []logSegment{{"", "<script>alert(1)</script>"}}},
		{"\x1b]8;;javascript:alert(1)\x1b\\click\x1b]8;;\x1b\\", []logSegment{{"", "click"}}},
		{"\x1b]8;;javascript:x\x07link\x1b]8;;\x07", []logSegment{{"", "link"}}},
		{"bad \xff\xfe end", []logSegment{{"", "bad \uFFFD end"}}},
		{"\x1b[2Jcleared\rline\x00", []logSegment{{"", "clearedline"}}},
		{"\x1b[38;5;196mred256\x1b[39m", []logSegment{{"", "red256"}}},
		{"cut \x1b[3", []logSegment{{"", "cut "}}},
		{"cut \x1b]8;;never ends", []logSegment{{"", "cut "}}},
	} {
		got := ansiSegments([]byte(c.in))
		if len(got) != len(c.want) {
			t.Errorf("ansiSegments(%q) = %q, want %q", c.in, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("ansiSegments(%q) = %q, want %q", c.in, got, c.want)
				break
			}
		}
	}
	long := strings.Repeat("a", 10<<20)
	if got := ansiSegments([]byte(long)); len(got) != 1 || len(got[0][1]) != len(long) {
		t.Errorf("a 10 MB line came back as %d segments", len(got))
	}
}

func TestLayoutDAG(t *testing.T) {
	step := func(name string, deps ...string) *server.Step { return &server.Step{Name: name, DependsOn: deps} }
	// Runbook order that crosses edges: x1 feeds y2, x2 feeds y1.
	steps := []*server.Step{step("x1"), step("x2"), step("y1", "x2"), step("y2", "x1"), step("z", "y1", "y2"), step("lone")}
	v := layoutDAG(steps)
	at := map[string]dagNode{}
	for _, n := range v.Nodes {
		at[n.Name] = n
	}
	col := func(n string) int { return (at[n].X - dagPad) / (dagNodeW + dagGapX) }
	for name, want := range map[string]int{"x1": 0, "x2": 0, "lone": 0, "y1": 1, "y2": 1, "z": 2} {
		if col(name) != want {
			t.Errorf("%s in layer %d, want %d", name, col(name), want)
		}
	}
	// Barycenter ordering uncrosses x1→y2 and x2→y1.
	if (at["x1"].Y < at["x2"].Y) != (at["y2"].Y < at["y1"].Y) {
		t.Errorf("edges cross: x1 %d x2 %d y1 %d y2 %d", at["x1"].Y, at["x2"].Y, at["y1"].Y, at["y2"].Y)
	}
	seen := map[[2]int]string{}
	for _, n := range v.Nodes {
		if o, ok := seen[[2]int{n.X, n.Y}]; ok {
			t.Errorf("%s and %s overlap", n.Name, o)
		}
		seen[[2]int{n.X, n.Y}] = n.Name
		if n.X+n.W > v.Width || n.Y+n.H > v.Height {
			t.Errorf("%s lies outside the %dx%d drawing", n.Name, v.Width, v.Height)
		}
	}
	if len(v.Edges) != 4 {
		t.Errorf("%d edges, want 4", len(v.Edges))
	}
	// A cycle or an unknown dependency never hangs the layout.
	layoutDAG([]*server.Step{step("a", "b"), step("b", "a"), step("c", "missing")})
}
