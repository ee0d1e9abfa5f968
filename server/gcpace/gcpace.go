// Package gcpace paces Go's garbage collector to the server's live heap.
//
// With the default GOGC of 100 a collection starts when the heap has grown
// by as much as is live. A server at work has a small live heap (tens of
// MiB) and allocates fast (requests, JSON, SQL rows), so it collected
// dozens of times a second: a tenth of its CPU under dispatch load. Pace
// lets the heap grow by at least a fixed headroom before a collection, and
// by the usual 100% once the live heap is larger than that headroom (10,000
// connected agents), so memory stays bounded as before.
package gcpace

import (
	"context"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Percent is the GOGC value that lets a heap with live bytes grow by at
// least headroom before the next collection: never below 100 and at most
// 1000.
func Percent(live, headroom uint64) int {
	if live == 0 {
		return 1000
	}
	p := headroom * 100 / live
	return int(min(max(p, 100), 1000))
}

// Run adjusts GOGC every interval from the live heap until ctx ends, then
// restores it. It does nothing when the GOGC environment variable is set:
// the operator chose.
func Run(ctx context.Context, headroom uint64, interval time.Duration) {
	if os.Getenv("GOGC") != "" {
		return
	}
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)
	t := time.NewTicker(interval)
	defer t.Stop()
	current := 100
	for {
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			if p := Percent(sample[0].Value.Uint64(), headroom); p != current {
				debug.SetGCPercent(p)
				current = p
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
