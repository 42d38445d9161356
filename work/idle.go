package work

import (
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Idle workspaces and reset hooks (issue 13, a fleet of branches): the engine keeps a
// workspace per branch it opened; one that no mount holds and nothing used for a while is
// evicted (its key cache with it), so that the daemon's memory follows the branches in use,
// not every branch ever touched. A mount's reset hook is removed when it unmounts.

// coarse is a clock with one-second steps: stamping every operation with time.Now would
// cost more than the cache lookup it accompanies.
var coarse struct {
	once sync.Once
	now  atomic.Int64
}

func coarseNow() int64 {
	coarse.once.Do(func() {
		coarse.now.Store(time.Now().Unix())
		go func() {
			for t := range time.Tick(time.Second) {
				coarse.now.Store(t.Unix())
			}
		}()
	})
	return coarse.now.Load()
}

// Touch records a use of the workspace (the engine calls it when it hands it out; reads
// and writes call it too).
func (ws *Workspace) Touch() {
	if n := coarseNow(); ws.lastUse.Load() != n {
		ws.lastUse.Store(n)
	}
}

// IdleSince reports whether nothing used the workspace since before (unix seconds).
func (ws *Workspace) IdleSince(before int64) bool { return ws.lastUse.Load() < before }

// errEvicted: a caller kept a workspace past its eviction; the engine has a new one.
func (ws *Workspace) errEvicted() error {
	return fmt.Errorf("%w: branch %s was idle and closed while this operation held it; retry", syscall.ESTALE, ws.name)
}

// Evicted reports whether the engine dropped this workspace (writes then fail with ESTALE).
func (ws *Workspace) Evicted() bool { return ws.evicted.Load() }

// TryEvict marks the workspace evicted and drops its key cache if nothing used it since
// before (unix seconds), no reset hook is registered (no mount) and no file is open, and no
// operation holds it now. It reports whether it did; the engine then forgets it.
func (ws *Workspace) TryEvict(before int64) bool {
	if ws.lastUse.Load() >= before || !ws.mu.TryLock() {
		return false
	}
	defer ws.mu.Unlock()
	ws.openMu.Lock()
	open := len(ws.open)
	ws.openMu.Unlock()
	if len(ws.hooks) > 0 || open > 0 {
		return false
	}
	ws.evicted.Store(true)
	ws.cache.Purge()
	ws.fresh.forget()
	return true
}

// Hooks returns how many reset hooks are registered (tests: unmount removes its hook).
func (ws *Workspace) Hooks() int {
	ws.mu.RLock()
	defer ws.mu.RUnlock()
	return len(ws.hooks)
}
