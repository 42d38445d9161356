package main

import (
	"context"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// The daemon's memory target (serve --memory-target, default 192 MiB).
//
// Most of what the daemon holds under write load is large byte buffers that come and go:
// Pebble's memtables and the FUSE request buffers. Go's default pacing (GOGC=100) lets the
// heap reach twice what is live before collecting, so 16 writers on 16 branches peaked at
// 300 MiB RSS although about 130 MiB was live (docs/performance.md). A soft memory limit
// makes the GC collect before the heap reaches the target instead. A fixed limit would make
// the GC run without pause once the daemon legitimately needs more than the target (a large
// tree, many branches), so the limit follows what is live:
//
//	limit = max(target, 2 x live - target/2, fixed + live + max(target/4, live/4))
//
// where fixed is what the runtime counts against the limit besides the heap's objects and
// its free pages (stacks, GC metadata, fragmentation). The last term guarantees the GC real
// headroom. Without it, a long-running daemon (the full make bench, 64 branches mounted
// before the build rows) had ~150 MiB of fixed memory, the heap goal fell to the live heap
// and the GC ran without pause: 85% of the daemon's CPU during `go build`, which then took
// 1.8x a plain directory. For a large live heap the limit tends to twice the live heap,
// where GOGC=100 already collects.
//
// GOMEMLIMIT set in the environment wins: the target is then not applied.

const defaultMemoryTarget = 192 << 20

// followMemoryTarget sets the soft memory limit from target and the live heap every 250 ms
// until ctx ends. target <= 0 or GOMEMLIMIT in the environment: it does nothing.
func followMemoryTarget(ctx context.Context, target int64) {
	if target <= 0 || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	sample := []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
	}
	set := int64(-1)
	apply := func() {
		metrics.Read(sample)
		var v [5]int64
		for i, s := range sample {
			if s.Value.Kind() == metrics.KindUint64 {
				v[i] = int64(s.Value.Uint64())
			}
		}
		live, fixed := v[0], max(0, v[1]-v[2]-v[3]-v[4])
		if l := memoryLimit(target, live, fixed); l != set {
			debug.SetMemoryLimit(l)
			set = l
		}
	}
	apply()
	go func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				apply()
			}
		}
	}()
}

// memoryLimit is the soft limit for a live heap of live bytes and fixed bytes of other
// runtime memory (see above).
func memoryLimit(target, live, fixed int64) int64 {
	return max(target, 2*live-target/2, fixed+live+max(target/4, live/4))
}
