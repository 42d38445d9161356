package work

import (
	"bytes"
	"context"
	"errors"

	"github.com/cockroachdb/pebble/v2"
)

// Folding outside the lock. A checkpoint folds a frozen copy of the working state
// (FreezeLocked over a Pebble snapshot) without holding the workspace's lock, so writers go
// on while blocks are hashed, compressed and stored. Writes that completed after the
// snapshot are not in the checkpoint: CarryLocked moves them into the branch's next overlay,
// so that the checkpoint's tree plus that overlay shows exactly the current state.

// CarryLocked writes into b, under overlay newID, what the working state changed since snap
// was taken (the snapshot a frozen copy folded into a tree). It returns the block keys it
// carried: their fold results are hidden by the carried entries. Callers hold the lock.
//
// An overlay entry whose value differs from the snapshot's (or is new) is carried. A block
// is "dirty" when its block key changed, or a page of it that the snapshot held is gone (a
// truncate or unlink dropped it): the fold applied that page to the block, so the block's
// current key value (from the overlay, else the old base tree, else a deletion) and all its
// current pages are carried, hiding the folded block.
func (ws *Workspace) CarryLocked(ctx context.Context, b *pebble.Batch, snap pebble.Reader, newID uint64) (map[string]bool, error) {
	newPrefix := OverlayPrefix(newID)
	set := func(k, v []byte) error {
		return b.Set(append(append(make([]byte, 0, len(newPrefix)+len(k)), newPrefix...), k...), v, nil)
	}
	bounds := &pebble.IterOptions{LowerBound: ws.prefix, UpperBound: PrefixEnd(ws.prefix)}
	old, err := snap.NewIter(bounds)
	if err != nil {
		return nil, err
	}
	defer old.Close()
	cur, err := ws.db.NewIter(bounds)
	if err != nil {
		return nil, err
	}
	defer cur.Close()
	type blockID struct{ ino, index uint64 }
	dirty := map[blockID]bool{}
	old.First()
	cur.First()
	for old.Valid() || cur.Valid() {
		c := 0
		switch {
		case !old.Valid():
			c = 1
		case !cur.Valid():
			c = -1
		default:
			c = bytes.Compare(old.Key(), cur.Key())
		}
		var k []byte
		if c <= 0 {
			k = old.Key()[len(ws.prefix):]
		} else {
			k = cur.Key()[len(ws.prefix):]
		}
		switch {
		case c < 0: // gone since the snapshot: only pages are ever removed
			if k[0] == KindPage {
				dirty[blockID{KeyIno(k), keyPage(k) / pagesPerBlock}] = true
			} else {
				return nil, errors.New("working layer: an overlay entry other than a page vanished during a checkpoint")
			}
		case c > 0 || !bytes.Equal(old.Value(), cur.Value()): // new or changed
			if err := set(k, cur.Value()); err != nil {
				return nil, err
			}
			if k[0] == KindBlock {
				dirty[blockID{KeyIno(k), keyPage(k)}] = true // a block key holds its index where a page key does
			}
		}
		if c <= 0 {
			old.Next()
		}
		if c >= 0 {
			cur.Next()
		}
	}
	if err := errors.Join(old.Error(), cur.Error()); err != nil {
		return nil, err
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
