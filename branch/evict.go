package branch

import (
	"math"
	"time"

	"github.com/agentfs/agentfs/work"
)

// cachedWorkspace returns the open workspace of branch name, or nil. It stamps it as used
// under Engine.mu, so that EvictIdle, which decides under the same lock, never drops a
// workspace it has just handed out.
func (e *Engine) cachedWorkspace(name string) *work.Workspace {
	e.mu.Lock()
	defer e.mu.Unlock()
	ws := e.ws[name]
	if ws != nil {
		ws.Touch()
	}
	return ws
}

// EvictIdle drops the workspaces that nothing used for idle: not mounted (no reset hook,
// not busy), no open file, no operation running. The next use of the branch opens it
// again from its ref. It returns how many it dropped. It also forgets stale folds and the
// in-memory folds of the idle workspaces it keeps (dropStaleFolds). The daemon calls it
// periodically, so that memory follows the branches in use, not every branch ever opened.
// With idle <= 0 it drops every workspace not in use at all.
func (e *Engine) EvictIdle(idle time.Duration) int {
	before := time.Now().Add(-idle).Unix()
	if idle <= 0 {
		before = math.MaxInt64
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for name, ws := range e.ws {
		if _, busy := e.busy[name]; busy || !ws.TryEvict(before) {
			continue
		}
		e.dropFold(ws)
		delete(e.ws, name)
		n++
	}
	e.dropStaleFolds(before)
	return n
}

// EvictUnused drops the workspace of branch name now if nothing uses it: no mount, no open
// file, no operation running. The daemon calls it when the last mount of a branch goes away,
// so that mount and unmount cycles over many branches leave no workspace behind (waiting
// for EvictIdle kept thousands of them in memory after a burst of cycles).
func (e *Engine) EvictUnused(name string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	ws := e.ws[name]
	if _, busy := e.busy[name]; busy || ws == nil || !ws.TryEvict(math.MaxInt64) {
		return false
	}
	e.dropFold(ws)
	delete(e.ws, name)
	return true
}

// OpenWorkspaces returns how many branches have a workspace in memory.
func (e *Engine) OpenWorkspaces() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.ws)
}
