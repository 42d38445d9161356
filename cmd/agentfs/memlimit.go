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
//	limit = max(target, 2 x live - target/2)
//
// For a large live heap the limit tends to twice the live heap, where GOGC=100 already
// collects. In between it bites, and harder than the formula suggests: the runtime counts
// all its memory against the limit (stacks, GC metadata, freed spans not yet returned; about
// 50 MiB in a 20k-file install), so with 133 MiB live the heap goal was 146-159 MiB, not
// the 170 MiB the formula gives. Collecting the large buffers is cheap (they hold no
// pointers): 1.3% of the daemon's CPU in the 16-writer run. What made it expensive was
// allocation, not the limit: a 20k-file install ran 63-73 GC cycles (17 without the
// target) while Pebble misses read 380 MB of sstable blocks; with those misses gone
// (work/fresh.go) it runs 18 (14 without), at the same daemon CPU.
//
// GOMEMLIMIT set in the environment wins: the target is then not applied.

const defaultMemoryTarget = 192 << 20

// followMemoryTarget sets the soft memory limit from target and the live heap every 250 ms
// until ctx ends. target <= 0 or GOMEMLIMIT in the environment: it does nothing.
func followMemoryTarget(ctx context.Context, target int64) {
	if target <= 0 || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	set := int64(-1)
	apply := func() {
		metrics.Read(sample)
		var live int64
		if sample[0].Value.Kind() == metrics.KindUint64 {
			live = int64(sample[0].Value.Uint64())
		}
		if l := memoryLimit(target, live); l != set {
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

// memoryLimit is the soft limit for a live heap of live bytes (see above).
func memoryLimit(target, live int64) int64 {
	return max(target, 2*live-target/2)
}
