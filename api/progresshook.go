package api

import (
	"sync/atomic"

	"github.com/agentfs/agentfs/gc"
)

// The CLI reaches a repository it opened itself through an in-process HTTP client (so that
// the guard and the audit log see every call), and a request cannot carry a func. The
// progress of gc and fsck run by a Local in this process therefore goes to the callback
// set here when the call brought none. Only the CLI sets it, around one call; a daemon
// never does, so its clients' calls report nothing here.
var processProgress atomic.Pointer[func(gc.Progress)]

// SetProcessProgress routes the progress of this process's gc and fsck to f until the
// returned func is called.
func SetProcessProgress(f func(gc.Progress)) (restore func()) {
	if f == nil {
		return func() {}
	}
	processProgress.Store(&f)
	return func() { processProgress.Store(nil) }
}

func progressOr(f func(gc.Progress)) func(gc.Progress) {
	if f != nil {
		return f
	}
	if p := processProgress.Load(); p != nil {
		return *p
	}
	return nil
}
