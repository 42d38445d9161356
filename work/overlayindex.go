package work

import (
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// overlayIndex holds the keys of the workspace's overlay, working pages aside, so that get
// asks Pebble only for keys the overlay holds and goes straight to the base tree for the
// rest.
//
// A branch forked a moment ago has an empty overlay, and an agent's branch changes a few
// hundred keys while it reads hundreds of thousands from its base (a build, git status, a
// test run). Each of those reads first missed in the overlay, and Pebble reads no bloom
// filter at the last level (UseL6Filters is off for Get), so each miss loaded an index and a
// data block: with 16 agents building on 16 branches, the block loads were 14% of the
// daemon's CPU and most of its allocation, and the GC another 28%.
//
// Every non-page key enters the overlay through Txn.set or Txn.del, which add it here before
// the batch commits. Whatever else writes the overlay (a checkpoint moving to a new overlay
// with the writes it carried, rollback, merge, pull) calls one of the *Locked methods that
// invalidate the index; the next get rebuilds it with one scan of the overlay's non-page keys.
// Past maxOverlayIndex keys the index turns itself off until the next invalidation: get then
// asks Pebble every time, as before.
type overlayIndex struct {
	mu    sync.Mutex
	state overlayIndexState
	keys  map[string]struct{}
}

type overlayIndexState int

const (
	indexUnknown overlayIndexState = iota // rebuild at the next get
	indexBuilt
	indexOff // too many keys
)

const maxOverlayIndex = 256 << 10

// mayHold reports whether the overlay of ws may hold key k: false only when the index is
// built and k is not in it. Callers hold ws.mu (read or write), so no commit runs meanwhile.
func (x *overlayIndex) mayHold(ws *Workspace, k []byte) (bool, error) {
	if len(k) == 0 || k[0] == KindPage {
		return true, nil
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.state == indexUnknown {
		if err := x.build(ws); err != nil {
			return true, err
		}
	}
	if x.state != indexBuilt {
		return true, nil
	}
	_, ok := x.keys[string(k)]
	return ok, nil
}

// build scans the overlay's keys outside the page range.
func (x *overlayIndex) build(ws *Workspace) error {
	keys := map[string]struct{}{}
	pages := ws.overlayKey([]byte{KindPage})
	for _, r := range [][2][]byte{
		{ws.prefix, pages},
		{ws.overlayKey([]byte{KindPage + 1}), PrefixEnd(ws.prefix)},
	} {
		it, err := ws.rd.NewIter(&pebble.IterOptions{LowerBound: r[0], UpperBound: r[1]})
		if err != nil {
			return err
		}
		for it.First(); it.Valid() && len(keys) <= maxOverlayIndex; it.Next() {
			keys[string(it.Key()[len(ws.prefix):])] = struct{}{}
		}
		if err := it.Close(); err != nil {
			return err
		}
	}
	if len(keys) > maxOverlayIndex {
		x.state, x.keys = indexOff, nil
		return nil
	}
	x.state, x.keys = indexBuilt, keys
	return nil
}

// add records a key a transaction is about to write to the overlay.
func (x *overlayIndex) add(k []byte) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.state != indexBuilt {
		return // unknown: the rebuild will see it; off: nothing to keep
	}
	x.keys[string(k)] = struct{}{}
	if len(x.keys) > maxOverlayIndex {
		x.state, x.keys = indexOff, nil
	}
}

// invalidate makes the next get rebuild the index (the overlay changed behind it).
func (x *overlayIndex) invalidate() {
	x.mu.Lock()
	x.state, x.keys = indexUnknown, nil
	x.mu.Unlock()
}
