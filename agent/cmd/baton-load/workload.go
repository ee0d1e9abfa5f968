package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/baton-ci/baton/shared/engine"
)

// chainRunbook is a run of length no-op steps s0 → s1 → … each depending
// on the one before, so every step but the first becomes Ready when its
// predecessor's completion is recorded.
func chainRunbook(length int) string {
	var b strings.Builder
	b.WriteString("name: baton-load\nsteps:\n")
	for i := 0; i < length; i++ {
		fmt.Fprintf(&b, "  - name: %s\n    command: \"true\"\n", chainStep(i))
		if i > 0 {
			fmt.Fprintf(&b, "    depends_on: [%s]\n", chainStep(i-1))
		}
	}
	return b.String()
}

// chainsResult is what one workload of chains measured.
type chainsResult struct {
	Chains, Length int
	Agents         int             // agents serving the workload
	Steps          int             // completions acknowledged
	Wall           time.Duration   // first run submitted → last completion acknowledged
	Latency        []time.Duration // see dispatchLog.latencies
	Complete       []time.Duration // /complete round trips
	Failed         int             // /complete calls that failed
	NotSucceeded   int             // runs not succeeded at the end
}

// StepsPerSecond is completions over the wall time.
func (r chainsResult) StepsPerSecond() float64 {
	if r.Wall <= 0 {
		return 0
	}
	return float64(r.Steps) / r.Wall.Seconds()
}

// runChains submits chains runs of length steps each (submitting from
// several goroutines), waits until every step's completion is acknowledged
// or within passes, and checks that every run succeeded.
func runChains(ctx context.Context, adm *admin, f *fleet, chains, length int, within time.Duration) (chainsResult, error) {
	res := chainsResult{Chains: chains, Length: length, Agents: len(f.list())}
	log := newDispatchLog(chains * length)
	f.dispatch.Store(log)
	defer f.dispatch.Store(nil)
	text := chainRunbook(length)

	start := time.Now()
	ids := make([]string, chains)
	errs := make(chan error, chains)
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(chains, 8); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				run, err := adm.createRun(ctx, "baton-load", text)
				if err != nil {
					errs <- err
					continue
				}
				ids[i] = run.ID
			}
		}()
	}
	for i := 0; i < chains; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return res, fmt.Errorf("submit: %w", err)
	}

	timer := time.NewTimer(within)
	defer timer.Stop()
	var waitErr error
	select {
	case <-log.done:
	case <-timer.C:
		waitErr = fmt.Errorf("not all steps completed within %s", within)
	case <-ctx.Done():
		return res, ctx.Err()
	}
	log.mu.Lock()
	res.Steps, res.Wall, res.Complete, res.Failed = len(log.completed), log.last.Sub(start), log.calls, log.failed
	log.mu.Unlock()
	res.Latency = log.latencies()
	for _, id := range ids {
		run, err := adm.run(ctx, id)
		if err != nil {
			return res, err
		}
		if run.State != engine.RunSucceeded {
			res.NotSucceeded++
		}
	}
	return res, waitErr
}
