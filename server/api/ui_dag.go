package api

import (
	"fmt"
	"sort"
	"time"

	"github.com/baton-ci/baton/server"
)

// The run page draws the DAG as SVG with a layered layout computed here:
// each step's layer is the longest path to it from an entry step, and the
// order within a layer is improved by a few barycenter sweeps (each node
// moves to the mean position of its neighbours in the layer before, then
// after), which removes most edge crossings of real runbooks.

const (
	dagNodeW, dagNodeH = 150, 36
	dagGapX, dagGapY   = 60, 18
	dagPad             = 10
	dagSweeps          = 4
)

type dagNode struct {
	Name, State, Label string
	X, Y, W, H         int
	// TextX, TextY place the label.
	TextX, TextY int
}

type dagEdge struct {
	From, To, Path string
}

type dagView struct {
	Width, Height int
	Nodes         []dagNode
	Edges         []dagEdge
}

// layoutDAG places a run's steps. Dependencies on unknown names are ignored;
// the runbook was validated, so there are no cycles, but a cycle would only
// stop the layering early, never loop.
func layoutDAG(steps []*server.Step) dagView {
	index := make(map[string]int, len(steps))
	for i, st := range steps {
		index[st.Name] = i
	}
	// Longest-path layering in topological order (Kahn).
	indeg := make([]int, len(steps))
	children := make([][]int, len(steps))
	parents := make([][]int, len(steps))
	for i, st := range steps {
		for _, d := range st.DependsOn {
			if j, ok := index[d]; ok && j != i {
				children[j] = append(children[j], i)
				parents[i] = append(parents[i], j)
				indeg[i]++
			}
		}
	}
	layer := make([]int, len(steps))
	queue := make([]int, 0, len(steps))
	for i := range steps {
		if indeg[i] == 0 {
			queue = append(queue, i)
		}
	}
	for k := 0; k < len(queue); k++ {
		n := queue[k]
		for _, c := range children[n] {
			layer[c] = max(layer[c], layer[n]+1)
			if indeg[c]--; indeg[c] == 0 {
				queue = append(queue, c)
			}
		}
	}
	depth := 0
	for _, l := range layer {
		depth = max(depth, l+1)
	}
	layers := make([][]int, depth)
	for i := range steps { // steps are in runbook order: the first guess
		layers[layer[i]] = append(layers[layer[i]], i)
	}
	pos := make([]float64, len(steps))
	setPos := func() {
		for _, l := range layers {
			for k, n := range l {
				pos[n] = float64(k)
			}
		}
	}
	setPos()
	bary := func(l []int, nbrs [][]int) {
		key := make(map[int]float64, len(l))
		for _, n := range l {
			if len(nbrs[n]) == 0 {
				key[n] = pos[n]
				continue
			}
			sum := 0.0
			for _, m := range nbrs[n] {
				sum += pos[m]
			}
			key[n] = sum / float64(len(nbrs[n]))
		}
		sort.SliceStable(l, func(a, b int) bool { return key[l[a]] < key[l[b]] })
	}
	for sweep := 0; sweep < dagSweeps; sweep++ {
		for i := 1; i < depth; i++ {
			bary(layers[i], parents)
			setPos()
		}
		for i := depth - 2; i >= 0; i-- {
			bary(layers[i], children)
			setPos()
		}
	}
	tallest := 0
	for _, l := range layers {
		tallest = max(tallest, len(l))
	}
	v := dagView{Width: 2*dagPad + depth*dagNodeW + max(depth-1, 0)*dagGapX,
		Height: 2*dagPad + tallest*dagNodeH + max(tallest-1, 0)*dagGapY}
	xy := make([][2]int, len(steps))
	for li, l := range layers {
		// Centre short layers vertically.
		offset := (tallest - len(l)) * (dagNodeH + dagGapY) / 2
		for k, n := range l {
			x := dagPad + li*(dagNodeW+dagGapX)
			y := dagPad + offset + k*(dagNodeH+dagGapY)
			xy[n] = [2]int{x, y}
		}
	}
	for i, st := range steps {
		label := st.Name
		if len(label) > 18 {
			label = label[:17] + "…"
		}
		v.Nodes = append(v.Nodes, dagNode{Name: st.Name, State: string(st.State), Label: label, X: xy[i][0], Y: xy[i][1],
			W: dagNodeW, H: dagNodeH, TextX: xy[i][0] + 10, TextY: xy[i][1] + dagNodeH/2 + 5})
	}
	for i := range steps {
		for _, p := range parents[i] {
			x1, y1 := xy[p][0]+dagNodeW, xy[p][1]+dagNodeH/2
			x2, y2 := xy[i][0], xy[i][1]+dagNodeH/2
			mid := (x1 + x2) / 2
			v.Edges = append(v.Edges, dagEdge{From: steps[p].Name, To: steps[i].Name,
				Path: fmt.Sprintf("M%d %d C%d %d %d %d %d %d", x1, y1, mid, y1, mid, y2, x2, y2)})
		}
	}
	return v
}

// timingBar is one step's bar on the run's timeline.
type timingBar struct {
	Name, State, Duration string
	X, Y, W               int
	TextY                 int
}

type timingView struct {
	Width, Height int
	Bars          []timingBar
	Span          string
}

const timingW, timingRow, timingLabel = 600, 22, 160

// layoutTiming draws when each started step ran, on the run's clock.
func layoutTiming(run *server.Run, now time.Time) timingView {
	var start, end time.Time
	for _, st := range run.Steps {
		if st.StartedAt == nil {
			continue
		}
		if start.IsZero() || st.StartedAt.Before(start) {
			start = *st.StartedAt
		}
		e := now
		if st.FinishedAt != nil {
			e = *st.FinishedAt
		}
		if e.After(end) {
			end = e
		}
	}
	v := timingView{Width: timingLabel + timingW + 80}
	if start.IsZero() {
		return v
	}
	span := max(end.Sub(start), time.Millisecond)
	v.Span = humanDuration(span)
	for _, st := range run.Steps {
		if st.StartedAt == nil {
			continue
		}
		e := now
		if st.FinishedAt != nil {
			e = *st.FinishedAt
		}
		x := int(float64(st.StartedAt.Sub(start)) / float64(span) * timingW)
		w := max(int(float64(e.Sub(*st.StartedAt))/float64(span)*timingW), 2)
		y := len(v.Bars) * timingRow
		v.Bars = append(v.Bars, timingBar{Name: st.Name, State: string(st.State), Duration: humanDuration(e.Sub(*st.StartedAt)),
			X: timingLabel + x, Y: y + 4, W: w, TextY: y + 16})
	}
	v.Height = len(v.Bars)*timingRow + 6
	return v
}
