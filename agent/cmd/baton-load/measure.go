package main

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Summary describes a sample of durations by nearest-rank percentiles.
type Summary struct {
	N                            int
	Min, P50, P90, P99, Max, Avg time.Duration
}

// Summarize sorts a copy of d and describes it; an empty sample gives N 0.
func Summarize(d []time.Duration) Summary {
	if len(d) == 0 {
		return Summary{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	var sum time.Duration
	for _, v := range s {
		sum += v
	}
	return Summary{N: len(s), Min: s[0], P50: Percentile(s, 50), P90: Percentile(s, 90), P99: Percentile(s, 99),
		Max: s[len(s)-1], Avg: sum / time.Duration(len(s))}
}

// Percentile is the nearest-rank p-th percentile of sorted: the smallest
// value with at least p% of the sample at or below it.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p * float64(len(sorted)) / 100)) // 1-based
	return sorted[min(max(rank-1, 0), len(sorted)-1)]
}

func (s Summary) String() string {
	if s.N == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  max %s  (n=%d)", ms(s.P50), ms(s.P90), ms(s.P99), ms(s.Max), s.N)
}

// ms prints a duration in milliseconds with two decimals.
func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

// dispatchLog collects, for one workload of chains, when each step's
// reservation reached its agent and when each step's completion was
// acknowledged, to derive dispatch latencies.
type dispatchLog struct {
	mu        sync.Mutex
	reserved  map[string]time.Time // step id → reservation received by the agent
	completed map[string]time.Time // step id → the answer to /complete received by the agent
	sent      map[string]time.Time // step id → its acknowledged /complete sent
	steps     map[string]stepRef   // step id → run and name (from the executor)
	calls     []time.Duration      // round trip of every successful /complete
	failed    int                  // /complete calls that failed
	want      int                  // steps expected to complete
	done      chan struct{}        // closed when want completions were acknowledged
	last      time.Time            // the latest acknowledged completion
}

type stepRef struct{ run, name string }

func newDispatchLog(want int) *dispatchLog {
	return &dispatchLog{reserved: map[string]time.Time{}, completed: map[string]time.Time{}, sent: map[string]time.Time{},
		steps: map[string]stepRef{}, want: want, done: make(chan struct{})}
}

func (l *dispatchLog) stepReserved(stepID string, at time.Time) {
	l.mu.Lock()
	l.reserved[stepID] = at
	l.mu.Unlock()
}

func (l *dispatchLog) stepStarted(stepID, runID, name string) {
	l.mu.Lock()
	l.steps[stepID] = stepRef{runID, name}
	l.mu.Unlock()
}

func (l *dispatchLog) stepCompleted(stepID string, sent, answered time.Time, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.failed++
		return
	}
	if _, seen := l.completed[stepID]; seen {
		return // a retried report
	}
	l.completed[stepID] = answered
	l.sent[stepID] = sent
	l.calls = append(l.calls, answered.Sub(sent))
	l.last = answered
	if len(l.completed) == l.want {
		close(l.done)
	}
}

// chainStep names step i of a chain; chainIndex reverses it.
func chainStep(i int) string { return "s" + strconv.Itoa(i) }

func chainIndex(name string) (int, bool) {
	n, err := strconv.Atoi(strings.TrimPrefix(name, "s"))
	return n, err == nil && strings.HasPrefix(name, "s")
}

// latencies returns the dispatch latency of every step that became Ready
// through the completion of its predecessor in the chain: the step's
// reservation reaching an agent, minus the moment the predecessor's
// /complete was sent. The step became Ready inside that call, so this
// bounds ready → payload at an agent from above; it also holds when the
// reservation comes back in the answer to a /complete (the next step
// reserved with a result). Entry steps (Ready when the run is created) are
// left out.
func (l *dispatchLog) latencies() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	byName := make(map[stepRef]string, len(l.steps))
	for id, ref := range l.steps {
		byName[ref] = id
	}
	var out []time.Duration
	for id, ref := range l.steps {
		got, ok := l.reserved[id]
		i, isChain := chainIndex(ref.name)
		if !ok || !isChain || i == 0 {
			continue
		}
		pred, ok := byName[stepRef{ref.run, chainStep(i - 1)}]
		if !ok {
			continue
		}
		if ready, ok := l.sent[pred]; ok {
			out = append(out, got.Sub(ready))
		}
	}
	return out
}

// broadcastRound finds, among the times at which agents heard a hint that
// the server sends to all of them at once (a ping round), the largest
// round: times closer than gap to the previous one belong to the same
// round. It returns how many hints that round has and how long it took
// from the first agent to hear it to the last.
func broadcastRound(times []time.Time, gap time.Duration) (count int, spread time.Duration) {
	if len(times) == 0 {
		return 0, 0
	}
	s := slices.Clone(times)
	slices.SortFunc(s, func(a, b time.Time) int { return a.Compare(b) })
	first := 0
	for i := 1; i <= len(s); i++ {
		if i < len(s) && s[i].Sub(s[i-1]) < gap {
			continue
		}
		if n := i - first; n > count {
			count, spread = n, s[i-1].Sub(s[first])
		}
		first = i
	}
	return count, spread
}
