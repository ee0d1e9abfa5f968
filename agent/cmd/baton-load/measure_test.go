package main

import (
	"slices"
	"testing"
	"time"

	"github.com/baton-ci/baton/shared/runbook"
)

func TestPercentileNearestRank(t *testing.T) {
	t.Parallel()
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{0, 1 * time.Millisecond}, {1, 1 * time.Millisecond}, {50, 50 * time.Millisecond}, {90, 90 * time.Millisecond},
		{99, 99 * time.Millisecond}, {99.5, 100 * time.Millisecond}, {100, 100 * time.Millisecond}} {
		if got := Percentile(d, c.p); got != c.want {
			t.Errorf("p%v of 1..100 ms = %s, want %s", c.p, got, c.want)
		}
	}
	if got := Percentile([]time.Duration{7, 3}, 50); got != 7 {
		t.Errorf("p50 of an unsorted input is taken as given: got %d, want 7", got)
	}
	if got := Percentile(nil, 50); got != 0 {
		t.Errorf("p50 of nothing = %s", got)
	}
}

func TestSummarize(t *testing.T) {
	t.Parallel()
	in := []time.Duration{4, 1, 3, 2}
	s := Summarize(in)
	want := Summary{N: 4, Min: 1, P50: 2, P90: 4, P99: 4, Max: 4, Avg: 2} // 10/4 rounds down
	if s != want {
		t.Errorf("Summarize = %+v, want %+v", s, want)
	}
	if !slices.Equal(in, []time.Duration{4, 1, 3, 2}) {
		t.Errorf("Summarize sorted its input: %v", in)
	}
	if (Summarize(nil) != Summary{}) || Summarize(nil).String() != "no samples" {
		t.Error("an empty sample should summarize to nothing")
	}
}

// Dispatch latency is the successor's reservation minus the moment the
// predecessor's acknowledged completion was sent, within the same run;
// entry steps, steps never reserved and failed reports give no sample.
func TestDispatchLatencies(t *testing.T) {
	t.Parallel()
	t0 := time.Now()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	l := newDispatchLog(3)
	for _, s := range []struct{ id, run, name string }{{"a0", "A", "s0"}, {"a1", "A", "s1"}, {"a2", "A", "s2"}, {"b1", "B", "s1"}} {
		l.stepStarted(s.id, s.run, s.name)
	}
	l.stepReserved("a0", at(0))
	l.stepCompleted("a0", at(1), at(10), nil)
	l.stepReserved("a1", at(13))
	l.stepCompleted("a1", at(14), at(20), nil)
	l.stepCompleted("a1", at(21), at(25), nil) // a retried report counts once
	l.stepReserved("a2", at(21))
	l.stepReserved("b1", at(22)) // run B's s0 never completed
	l.stepCompleted("b1", at(23), at(24), errTest{})

	got := l.latencies()
	slices.Sort(got)
	if want := []time.Duration{7 * time.Millisecond, 12 * time.Millisecond}; !slices.Equal(got, want) {
		t.Errorf("latencies = %v, want %v", got, want)
	}
	if l.failed != 1 || len(l.calls) != 2 {
		t.Errorf("failed %d, calls %v; want 1 failure and 2 acknowledged completions", l.failed, l.calls)
	}
	select {
	case <-l.done:
		t.Error("done closed after 2 of 3 completions")
	default:
	}
	l.stepCompleted("a2", at(30), at(31), nil)
	<-l.done
	if !l.last.Equal(at(31)) {
		t.Errorf("last completion %s, want %s", l.last.Sub(t0), 31*time.Millisecond)
	}
}

type errTest struct{}

func (errTest) Error() string { return "refused" }

func TestBroadcastRound(t *testing.T) {
	t.Parallel()
	t0 := time.Now()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	// The tail of one round, a full round of 4, and the head of the next.
	times := []time.Time{at(20), at(10), at(10000), at(10030), at(10005), at(10012), at(20000), at(20001)}
	if n, spread := broadcastRound(times, time.Second); n != 4 || spread != 30*time.Millisecond {
		t.Errorf("broadcastRound = %d hints over %s, want 4 over 30ms", n, spread)
	}
	if n, _ := broadcastRound(nil, time.Second); n != 0 {
		t.Errorf("no hints gave a round of %d", n)
	}
}

func TestChainRunbookIsAChain(t *testing.T) {
	t.Parallel()
	rb, err := runbook.Parse("runbook.yml", []byte(chainRunbook(5)))
	if err != nil {
		t.Fatal(err)
	}
	if len(rb.Steps) != 5 {
		t.Fatalf("%d steps, want 5", len(rb.Steps))
	}
	for i, st := range rb.Steps {
		if n, ok := chainIndex(st.Name); !ok || n != i {
			t.Errorf("step %d is named %q", i, st.Name)
		}
		if want := []string{chainStep(i - 1)}; i > 0 && !slices.Equal(st.DependsOn, want) {
			t.Errorf("step %s depends on %v, want %v", st.Name, st.DependsOn, want)
		}
		if i == 0 && len(st.DependsOn) != 0 {
			t.Errorf("entry step depends on %v", st.DependsOn)
		}
	}
}
