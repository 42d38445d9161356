package work

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"syscall"

	"github.com/cockroachdb/pebble/v2"

	"github.com/agentfs/agentfs/branch/tree"
	"github.com/agentfs/agentfs/store"
)

// MaxFileSize bounds file sizes (block indexes must fit the key space comfortably).
const MaxFileSize = 1 << 50

// The working layer (docs/architecture.md, "The write path"). A branch's uncommitted file
// content lives in its overlay as mutable 4 KiB pages under 'p' keys, overwritten in place:
// a 4 KiB write is one 4 KiB Pebble value, and rewriting it makes no garbage. A page hides
// the same bytes of the file's 64 KiB block (a 'b' key, content-addressed); a missing page
// shows the block. Pages never enter a tree: a fold (checkpoint, fork, diff, merge, push)
// applies them to their blocks, hashes and stores the result (fold.go).
//
// Invariant: no byte past a file's size is stored non-zero (truncate zeroes what it cuts),
// so growing a file needs no clearing.
const (
	PageSize      = 4 << 10
	pagesPerBlock = BlockSize / PageSize
)

func (ws *Workspace) inode(ctx context.Context, ino uint64) (*Inode, error) {
	v, ok, err := ws.get(ctx, InodeKey(ino))
	return InodeFrom(ino, v, ok, err)
}

// storedBlock returns block index of ino as stored (nil for a hole). The returned slice may
// be shorter than BlockSize: the rest reads as zeros.
func (ws *Workspace) storedBlock(ctx context.Context, ino, index uint64, buf []byte) ([]byte, error) {
	v, ok, err := ws.get(ctx, BlockKey(ino, index))
	if err != nil || !ok {
		return nil, err
	}
	if len(v) != len(store.ID{}) {
		return nil, fmt.Errorf("inode %d block %d: %w: malformed block reference", ino, index, syscall.EIO)
	}
	id := store.ID(v)
	data, err := ws.env.Store.Get(ctx, id, buf)
	if err != nil {
		ws.env.Log.Printf("read of inode %d block %d (block %s) failed: %v", ino, index, id, err)
		return nil, fmt.Errorf("inode %d block %d: %w: %w", ino, index, syscall.EIO, err)
	}
	return data, nil
}

// pageSpan reads the working pages of ino in [first, last] into fn, in order. The value is
// the page's stored bytes (shorter than PageSize: zeros follow); it is valid during the call.
func (ws *Workspace) pageSpan(ino, first, last uint64, fn func(index uint64, v []byte)) error {
	if ws.prefix == nil {
		return nil
	}
	it, err := ws.rd.NewIter(&pebble.IterOptions{
		LowerBound: ws.overlayKey(pageKey(ino, first)),
		UpperBound: ws.overlayKey(pageKey(ino, last+1)),
	})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		v := it.Value()
		if len(v) == 0 || v[0] != 1 {
			continue
		}
		fn(keyPage(it.Key()[len(ws.prefix):]), v[1:])
	}
	return errors.Join(it.Error(), it.Close())
}

// Read reads up to len(dest) bytes at off and returns how many it read (short only at the end
// of the file).
func (ws *Workspace) Read(ctx context.Context, ino uint64, off int64, dest []byte) (int, error) {
	return ws.ReadAt(ctx, nil, ino, off, dest)
}

// readInode is Read of inode n; callers hold the lock.
func (ws *Workspace) readInode(ctx context.Context, n *Inode, off int64, dest []byte) (int, error) {
	ino := n.Ino
	if n.IsDir() {
		return 0, syscall.EISDIR
	}
	if off < 0 {
		return 0, syscall.EINVAL
	}
	if uint64(off) >= n.Size {
		return 0, nil
	}
	dest = dest[:min(uint64(len(dest)), n.Size-uint64(off))]
	if n.Inline {
		return copy(dest, n.Data[off:]), nil
	}
	if len(dest) == 0 {
		return 0, nil
	}
	start, end := uint64(off), uint64(off)+uint64(len(dest))
	// First the blocks (holes read as zeros), then the pages over them.
	var buf []byte
	at := start / BlockSize
	// A remote that reads ahead asks what comes after the block fetched (see store.Sequel).
	seqCtx := store.WithSequel(ctx, func(yield func(store.ID) bool) { ws.blocksAfter(ctx, ino, at, yield) })
	for index := at; index*BlockSize < end; index++ {
		at = index
		block, err := ws.storedBlock(seqCtx, ino, index, buf[:0])
		if err != nil {
			return 0, err
		}
		buf = block
		copyRange(dest, start, index*BlockSize, block, BlockSize)
	}
	err := ws.pageSpan(ino, start/PageSize, (end-1)/PageSize, func(p uint64, v []byte) {
		copyRange(dest, start, p*PageSize, v, PageSize)
	})
	return len(dest), err
}

// blocksAfter yields the stored blocks of ino after block index, in order (a store.Sequel: a
// remote reading ahead learns from it where the file goes on). The caller holds ws.mu.
func (ws *Workspace) blocksAfter(ctx context.Context, ino, index uint64, yield func(store.ID) bool) {
	_ = ws.scan(ctx, BlockKey(ino, index+1), PrefixEnd(BlockPrefix(ino)), func(_, v []byte) error {
		if len(v) == len(store.ID{}) && !yield(store.ID(v)) {
			return tree.Stop
		}
		return nil
	})
}

// copyRange copies src, which holds the file's bytes from srcOff (zeros after its end, up to
// its unit: a page or a block), into dest, which holds the file's bytes from destOff.
func copyRange(dest []byte, destOff, srcOff uint64, src []byte, unit uint64) {
	lo, hi := max(destOff, srcOff), min(destOff+uint64(len(dest)), srcOff+unit)
	if lo >= hi {
		return
	}
	d := dest[lo-destOff : hi-destOff]
	got := 0
	if lo-srcOff < uint64(len(src)) {
		got = copy(d, src[lo-srcOff:])
	}
	clear(d[got:])
}

// pageOf returns the current content of page index of n as a PageSize buffer.
func (t *Txn) pageOf(ctx context.Context, n *Inode, index uint64) ([]byte, error) {
	p := make([]byte, PageSize)
	if index*PageSize >= n.Size {
		return p, nil // nothing stored past the end
	}
	if v, ok := t.pages[pageID{n.Ino, index}]; ok {
		copy(p, v)
		return p, nil
	}
	found := false
	if err := t.ws.pageSpan(n.Ino, index, index, func(_ uint64, v []byte) { copy(p, v); found = true }); err != nil || found {
		return p, err
	}
	block, err := t.ws.storedBlock(ctx, n.Ino, index/pagesPerBlock, nil)
	if err != nil {
		return nil, err
	}
	if within := (index % pagesPerBlock) * PageSize; within < uint64(len(block)) {
		copy(p, block[within:])
	}
	return p, nil
}

// setPage stages page index of ino (trailing zeros are not stored).
// The value is encoded straight into the batch (SetDeferred): a 4 KiB write copies its page
// once, not into a temporary value first.
func (t *Txn) setPage(ino, index uint64, p []byte) error {
	p = bytes.TrimRight(p, "\x00")
	if t.pages == nil {
		t.pages = map[pageID][]byte{}
	}
	t.pages[pageID{ino, index}] = p
	k := t.ws.overlayKey(pageKey(ino, index))
	op := t.b.SetDeferred(len(k), 1+len(p))
	copy(op.Key, k)
	op.Value[0] = 1
	copy(op.Value[1:], p)
	return op.Finish()
}

// maxPointDrops is the most pages dropPages deletes one by one; beyond it, one range
// deletion.
const maxPointDrops = 1024

// dropPages deletes the pages of ino from index on; size is the file's size before the
// drop. A file has no page at or past the end of the block holding its last byte (writes
// stay below the size, a truncation drops the pages past it and zeroes the rest of its
// block), so a small file's pages are deleted one by one: a Pebble range deletion per
// unlink or truncate would make every later read of the memtable fragment all of them
// (after an rm -rf of 20k files, a LOOKUP took a millisecond).
func (t *Txn) dropPages(ino, from, size uint64) error {
	t.drops = append(t.drops, pageID{ino, from})
	for id := range t.pages {
		if id.ino == ino && id.index >= from {
			delete(t.pages, id)
		}
	}
	end := (size + BlockSize - 1) / BlockSize * pagesPerBlock
	if end > from && end-from > maxPointDrops {
		return t.b.DeleteRange(t.ws.overlayKey(pageKey(ino, from)), t.ws.overlayKey(PrefixEnd(pagePrefix(ino))), nil)
	}
	for i := from; i < end; i++ {
		if err := t.b.Delete(t.ws.overlayKey(pageKey(ino, i)), nil); err != nil {
			return err
		}
	}
	return nil
}

// writeSince writes data at off through a descriptor opened in workspace generation *since (nil: no
// descriptor). After a rollback (a new generation) it fails with ESTALE, so that a
// descriptor of the discarded state never changes the restored tree.
func (ws *Workspace) writeSince(ctx context.Context, since *uint64, ino uint64, off int64, data []byte) (int, error) {
	defer ws.env.Op()()
	if off < 0 {
		return 0, syscall.EINVAL
	}
	end := uint64(off) + uint64(len(data))
	if end > MaxFileSize {
		return 0, syscall.EFBIG
	}
	if err := ws.env.Store.CheckSpace(); err != nil {
		return 0, err
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if since != nil && *since != ws.gen {
		return 0, fmt.Errorf("%w: the branch was rolled back after this file was opened; open it again", syscall.ESTALE)
	}
	t, err := ws.begin()
	if err != nil {
		return 0, err
	}
	defer t.abort()
	n, err := t.inode(ctx, ino)
	if err != nil {
		return 0, err
	}
	if !n.IsRegular() {
		if n.IsDir() {
			return 0, syscall.EISDIR
		}
		return 0, syscall.EINVAL
	}
	now := ws.env.Now().UnixNano()
	n.Mtime, n.Ctime = now, now
	if n.Inline && end <= InlineMax {
		if end > uint64(len(n.Data)) {
			n.Data = append(n.Data, make([]byte, end-uint64(len(n.Data)))...)
		}
		copy(n.Data[off:], data)
		n.Size = uint64(len(n.Data))
		if err := t.putInode(n); err != nil {
			return 0, err
		}
		return len(data), t.commit(false)
	}
	if err := t.uninline(n); err != nil {
		return 0, err
	}
	for done := 0; done < len(data); {
		pos := uint64(off) + uint64(done)
		index, within := pos/PageSize, int(pos%PageSize)
		take := min(len(data)-done, PageSize-within)
		var p []byte
		if take == PageSize {
			p = data[done : done+take]
		} else {
			if p, err = t.pageOf(ctx, n, index); err != nil {
				return 0, err
			}
			copy(p[within:], data[done:done+take])
		}
		if err := t.setPage(ino, index, p); err != nil {
			return 0, err
		}
		done += take
	}
	n.Size = max(n.Size, end)
	if err := t.putInode(n); err != nil {
		return 0, err
	}
	return len(data), t.commit(false)
}

// uninline moves inline content into the first page.
func (t *Txn) uninline(n *Inode) error {
	if !n.Inline {
		return nil
	}
	if len(n.Data) > 0 {
		if err := t.setPage(n.Ino, 0, n.Data); err != nil {
			return err
		}
	}
	n.Inline, n.Data = false, nil
	return nil
}

// FlushAll makes everything written to the workspace durable.
func (ws *Workspace) FlushAll(ctx context.Context) error {
	if ws.readOnly {
		return nil
	}
	return ws.env.Store.Sync()
}

// Fsync makes the file durable, with everything written before it: every operation is in
// the write-ahead log already, so this is one synced log write, shared with concurrent
// callers.
func (ws *Workspace) Fsync(ctx context.Context, ino uint64) error {
	if ws.readOnly {
		return nil
	}
	return ws.env.Store.Sync()
}

// truncateLocked sets the size of regular file n (the caller stores n).
func (ws *Workspace) truncateLocked(ctx context.Context, t *Txn, n *Inode, size uint64) error {
	if size > MaxFileSize {
		return syscall.EFBIG
	}
	if n.Inline {
		if size <= InlineMax {
			if size < uint64(len(n.Data)) {
				n.Data = n.Data[:size]
			} else {
				n.Data = append(n.Data, make([]byte, size-uint64(len(n.Data)))...)
			}
			n.Size = size
			return nil
		}
		if err := t.uninline(n); err != nil {
			return err
		}
	}
	if size < n.Size {
		keep := (size + BlockSize - 1) / BlockSize // blocks [0, keep) stay
		var drop [][]byte
		from := BlockKey(n.Ino, keep)
		if err := ws.scan(ctx, from, PrefixEnd(BlockPrefix(n.Ino)), func(k, v []byte) error {
			drop = append(drop, bytes.Clone(k))
			return nil
		}); err != nil {
			return err
		}
		for _, k := range drop {
			if err := t.del(k); err != nil {
				return err
			}
		}
		// The page holding the new end keeps its head; the rest of its block, if a stored
		// block shows there, is hidden by zero pages.
		var tail []byte
		if size%PageSize != 0 {
			p, err := t.pageOf(ctx, n, size/PageSize)
			if err != nil {
				return err
			}
			clear(p[size%PageSize:])
			tail = p
		}
		firstCut := (size + PageSize - 1) / PageSize
		if err := t.dropPages(n.Ino, size/PageSize, n.Size); err != nil {
			return err
		}
		if tail != nil {
			if err := t.setPage(n.Ino, size/PageSize, tail); err != nil {
				return err
			}
		}
		if size%BlockSize != 0 {
			_, stored, err := t.get(ctx, BlockKey(n.Ino, size/BlockSize))
			if err != nil {
				return err
			}
			if stored {
				for p := firstCut; p%pagesPerBlock != 0; p++ {
					if err := t.setPage(n.Ino, p, nil); err != nil {
						return err
					}
				}
			}
		}
	}
	n.Size = size
	if size == 0 {
		n.Inline, n.Data = true, nil
	}
	return nil
}

type pageID struct{ ino, index uint64 }

// Write writes data at off, within the branch's quota (Env.Admit). The pages it touches go
// into the overlay in the operation's batch, which reaches the write-ahead log before Write
// returns.
func (ws *Workspace) Write(ctx context.Context, ino uint64, off int64, data []byte) (int, error) {
	return ws.WriteSince(ctx, nil, ino, off, data)
}

// WriteSince is Write through a descriptor opened in workspace generation *since (nil: no
// descriptor). After a rollback (a new generation) it fails with ESTALE, so that a
// descriptor of the discarded state never changes the restored tree.
func (ws *Workspace) WriteSince(ctx context.Context, since *uint64, ino uint64, off int64, data []byte) (int, error) {
	done, err := ws.admit(ctx, Usage{Bytes: int64(len(data))})
	if err != nil {
		return 0, err
	}
	n, err := ws.writeSince(ctx, since, ino, off, data)
	done(err == nil)
	return n, err
}

// ReadAllLocked reads a whole file, working pages included, while the caller holds the
// lock.
func (ws *Workspace) ReadAllLocked(ctx context.Context, n *Inode, buf []byte) (int, error) {
	return ws.readInode(ctx, n, 0, buf)
}
