package work

import (
	"context"
	"errors"

	"github.com/cockroachdb/pebble/v2"

	"github.com/agentfs/agentfs/internal/kv"
)

// Folding outside the lock. A checkpoint folds a frozen copy of the working state
// (FreezeLocked over a Pebble snapshot) without holding the workspace's lock, so writers go
// on while blocks are hashed, compressed and stored. Writes that completed after the
// snapshot are not in the checkpoint: CarryLocked moves them into the branch's next overlay,
// so that the checkpoint's tree plus that overlay shows exactly the current state.

// Journal records the overlay keys changed after a checkpoint's snapshot.
type Journal struct {
	keys  map[string]bool // tree keys set or deleted, pages included
	drops []pageID        // page ranges deleted
}

// StartJournalLocked starts recording the keys every operation changes, for CarryLocked.
// Callers hold the lock and end the journal with EndJournal.
func (ws *Workspace) StartJournalLocked() *Journal {
	j := &Journal{keys: map[string]bool{}}
	ws.journalMu.Lock()
	ws.journals = append(ws.journals, j)
	ws.journaling.Store(int32(len(ws.journals)))
	ws.journalMu.Unlock()
	return j
}

// EndJournal stops j; it may be called more than once, with or without the lock.
func (ws *Workspace) EndJournal(j *Journal) {
	ws.journalMu.Lock()
	defer ws.journalMu.Unlock()
	for i, x := range ws.journals {
		if x == j {
			ws.journals = append(ws.journals[:i], ws.journals[i+1:]...)
			break
		}
	}
	ws.journaling.Store(int32(len(ws.journals)))
}

// journal records what committed transaction t changed in every active journal.
func (ws *Workspace) journal(t *Txn) {
	ws.journalMu.Lock()
	defer ws.journalMu.Unlock()
	for _, j := range ws.journals {
		for k := range t.staged {
			j.keys[k] = true
		}
		for id := range t.pages {
			j.keys[string(pageKey(id.ino, id.index))] = true
		}
		j.drops = append(j.drops, t.drops...)
	}
}

// TouchesLocked reports whether carrying j would set tree key k in the next overlay: k
// changed since the snapshot, or k is a block key and a page of that block was written or
// dropped since. A merge built on the snapshot's fold checks its changed keys with it: when
// none is touched, carrying the writes onto the merge's tree is the same as making them after
// the merge. Callers hold the lock (no operation adds to j meanwhile).
func (ws *Workspace) TouchesLocked(j *Journal, k []byte) bool {
	ws.journalMu.Lock()
	defer ws.journalMu.Unlock()
	if j.keys[string(k)] {
		return true
	}
	if len(k) != 17 || k[0] != KindBlock {
		return false
	}
	ino, first := KeyIno(k), keyPage(k)*pagesPerBlock
	for p := first; p < first+pagesPerBlock; p++ {
		if j.keys[string(pageKey(ino, p))] {
			return true
		}
	}
	for _, d := range j.drops {
		if d.ino == ino && d.index < first+pagesPerBlock {
			return true
		}
	}
	return false
}

// CarryLocked writes into b, under overlay newID, what the working state changed since snap
// was taken (the snapshot a frozen copy folded into a tree), as journal j recorded it, and
// ends j. It returns the block keys it carried: their fold results are hidden by the carried
// entries. Its cost follows the writes made since the snapshot. Callers hold the lock.
//
// A changed key is carried with its current overlay value. A block is "dirty" when its
// block key changed, or a page of it that the snapshot held is gone (a truncate or unlink
// dropped it): the fold applied that page to the block, so the block's current key value
// (from the overlay, else the old base tree, else a deletion) and all its current pages are
// carried, hiding the folded block.
func (ws *Workspace) CarryLocked(ctx context.Context, b *pebble.Batch, snap pebble.Reader, newID uint64, j *Journal) (map[string]bool, error) {
	ws.EndJournal(j)
	newPrefix := OverlayPrefix(newID)
	set := func(k, v []byte) error {
		return b.Set(append(append(make([]byte, 0, len(newPrefix)+len(k)), newPrefix...), k...), v, nil)
	}
	type blockID struct{ ino, index uint64 }
	dirty := map[blockID]bool{}
	for ks := range j.keys {
		k := []byte(ks)
		if k[0] == KindBlock {
			dirty[blockID{KeyIno(k), keyPage(k)}] = true // a block key holds its index where a page key does
			continue
		}
		v, now, err := kv.Get(ws.db, ws.overlayKey(k))
		if err != nil {
			return nil, err
		}
		if !now {
			if k[0] != KindPage {
				return nil, errors.New("working layer: an overlay entry other than a page vanished during a checkpoint")
			}
			_, inSnap, err := kv.Get(snap, ws.overlayKey(k))
			if err != nil {
				return nil, err
			}
			if inSnap {
				dirty[blockID{KeyIno(k), keyPage(k) / pagesPerBlock}] = true
			}
			continue
		}
		if err := set(k, v); err != nil {
			return nil, err
		}
	}
	// Pages the snapshot held in a dropped range.
	for _, d := range j.drops {
		lo := ws.overlayKey(pageKey(d.ino, d.index))
		it, err := snap.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: ws.overlayKey(PrefixEnd(pagePrefix(d.ino)))})
		if err != nil {
			return nil, err
		}
		for it.First(); it.Valid(); it.Next() {
			dirty[blockID{d.ino, keyPage(it.Key()[len(ws.prefix):]) / pagesPerBlock}] = true
		}
		if err := errors.Join(it.Error(), it.Close()); err != nil {
			return nil, err
		}
	}
	carried := map[string]bool{}
	for blk := range dirty {
		key := BlockKey(blk.ino, blk.index)
		carried[string(key)] = true
		v, ok, err := ws.get(ctx, key) // the current value, before the base moves
		if err != nil {
			return nil, err
		}
		if ok {
			err = set(key, append([]byte{1}, v...))
		} else {
			err = set(key, []byte{0})
		}
		if err != nil {
			return nil, err
		}
		first := blk.index * pagesPerBlock
		if err := ws.pageSpan(blk.ino, first, first+pagesPerBlock-1, func(index uint64, v []byte) {
			if err == nil {
				err = set(pageKey(blk.ino, index), append([]byte{1}, v...))
			}
		}); err != nil {
			return nil, err
		}
		if err != nil {
			return nil, err
		}
	}
	return carried, nil
}
