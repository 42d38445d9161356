package api

import (
	"runtime"
	"runtime/debug"
	"sync"
	"time"
)

// Every mount allocates its own FUSE request buffers (go-fuse keeps a pool per server, about
// 1 MiB per reader), which become garbage when it unmounts. With a large live heap (a
// daemon serving thousands of branches) the collector lets that garbage grow to the size of
// the live heap before it runs, so a burst of mounts and unmounts left the daemon's RSS far
// above what it holds. Once unmounts stop for a moment, the garbage is collected and the
// memory given back to the operating system.

const releaseAfter = 500 * time.Millisecond

var release struct {
	mu    sync.Mutex
	timer *time.Timer
}

// releaseMemorySoon frees unused memory once no unmount happened for releaseAfter.
func releaseMemorySoon() {
	release.mu.Lock()
	defer release.mu.Unlock()
	if release.timer == nil {
		release.timer = time.AfterFunc(releaseAfter, freeMemory)
		return
	}
	release.timer.Reset(releaseAfter)
}

// freeMemory collects twice before giving memory back: go-fuse keeps request buffers in
// sync.Pools, whose contents survive one collection (as the pool's victim cache).
func freeMemory() {
	runtime.GC()
	debug.FreeOSMemory()
}
