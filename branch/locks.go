package branch

import (
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// Operations that change one branch's ref (create, checkpoint, rollback, merge, delete) run
// under that branch's lock, not an engine-wide one: they end in a synced commit, and
// branches must not queue behind each other's fsyncs. Pebble groups concurrent synced
// commits into one fsync, so k branches checkpointing at once cost about one fsync.
//
// Lock order: a workspace's mu, then its branch lock, then Engine.mu (held only for map
// updates, never across I/O).

// keyedLocks hands out one mutex per key, made on first use and dropped when unused, so
// that a fleet of branches costs memory only for the locks in use.
type keyedLocks struct {
	mu sync.Mutex
	m  map[string]*keyedLock
}

type keyedLock struct {
	sync.Mutex
	users int // holders and waiters; guarded by keyedLocks.mu
}

// lock takes the lock of key and returns its unlock.
func (k *keyedLocks) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyedLock{}
	}
	l := k.m[key]
	if l == nil {
		l = &keyedLock{}
		k.m[key] = l
	}
	l.users++
	k.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		k.mu.Lock()
		if l.users--; l.users == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}

// lockBranch takes branch name's lock.
func (e *Engine) lockBranch(name string) func() { return e.locks.lock("b\x00" + name) }

// lockTag takes tag name's lock.
func (e *Engine) lockTag(name string) func() { return e.locks.lock("t\x00" + name) }

// branchIDBatch is how many overlay ids one reservation takes.
const branchIDBatch = 64

// newBranchID returns an overlay id never handed out before. Ids are reserved in ranges:
// the reservation is committed (unsynced) before any ref that uses an id from it; the
// WAL is ordered, so the synced commit of that ref makes the reservation durable too, and a
// crash cannot hand an id out twice. The lock is held only for a WAL write, never an fsync.
func (e *Engine) newBranchID() (uint64, error) {
	e.idMu.Lock()
	defer e.idMu.Unlock()
	if e.idCur == e.idEnd {
		b := e.db.NewBatch()
		defer b.Close()
		start, err := e.counter(b, keyNextBranch, branchIDBatch)
		if err != nil {
			return 0, err
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			return 0, err
		}
		e.idCur, e.idEnd = start, start+branchIDBatch
	}
	e.idCur++
	return e.idCur - 1, nil
}

// testBeforeRefCommit, when set by a test, runs before the synced commit that moves or
// creates branch name's ref, while that branch's lock is held.
var testBeforeRefCommit func(name string)

func beforeRefCommit(name string) {
	if f := testBeforeRefCommit; f != nil {
		f(name)
	}
}
