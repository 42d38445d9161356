package work

import (
	"context"
	"sync"

	"github.com/agentfs/agentfs/store"
)

// Read-ahead for sequential readers (issue 17, cold sequential reads). The kernel asks a FUSE
// filesystem for at most a few 128 KiB READs at a time, and each cold 64 KiB block or 4 KiB
// working page behind them is a synchronous disk read: one block after another, a virtual
// disk delivers a tenth of its bandwidth. So when a reader's reads follow each other, the
// blocks after its last read are read in the background, several at once:
//
//   - a stored block is read, decoded and verified against its hash, and kept by the store
//     until the reader's Get takes it (store.Prefetch): block IDs never change meaning, so
//     nothing kept needs invalidating when the file changes;
//   - working pages are read through Pebble and dropped: that leaves them in Pebble's block
//     cache and the page cache, and the reader's own read still goes through Pebble, so a
//     page written in between is read as written.
//
// A background read that fails does nothing: the reader's own read meets the error.

// ReadAhead is the read-ahead state of one reader (a FUSE file handle). The zero value is
// ready; it is safe for concurrent use (the kernel sends several READs of one handle at once).
type ReadAhead struct {
	mu     sync.Mutex
	next   uint64 // where the last read ended
	ahead  uint64 // blocks before this offset were read ahead (or are being)
	window uint64 // how far ahead of the reader; grows while it stays sequential
	seq    int    // reads in a row that followed the one before
}

const (
	aheadFirst = 512 << 10 // window after the second sequential read
	aheadMax   = 4 << 20   // largest window
	// aheadSlack is how far a read may start from where the last one ended and still count
	// as following it: the kernel's asynchronous READs of one handle (up to 1 MiB each)
	// arrive out of order.
	aheadSlack = 1 << 20
	// aheadInFlight bounds the background reads of the whole process: enough to keep a
	// virtual disk's queue busy, few enough to leave the cores to the readers.
	aheadInFlight = 8
)

// aheadUnit is what one background read covers: four blocks, so that the working pages
// behind them are read by one Pebble iterator, in order.
const aheadUnit = 4 * BlockSize

var aheadSlots = make(chan struct{}, aheadInFlight)

// ReadAt is Read for reader ra (nil: no read-ahead).
func (ws *Workspace) ReadAt(ctx context.Context, ra *ReadAhead, ino uint64, off int64, dest []byte) (int, error) {
	ws.mu.RLock()
	defer ws.mu.RUnlock()
	n, err := ws.inode(ctx, ino)
	if err != nil {
		return 0, err
	}
	if ra != nil && n.IsRegular() && !n.Inline && off >= 0 && len(dest) > 0 {
		if ra.read(ws, ino, n.Size, uint64(off), uint64(off)+uint64(len(dest))) {
			ctx = store.WithStreaming(ctx) // a lazy clone's remote reads ahead more at once
		}
	}
	return ws.readInode(ctx, n, off, dest)
}

// read records a read of [off, end) of ino, size bytes long, and starts background reads of
// the blocks after it once the reader is sequential: two reads in a row that each followed
// the one before (one could be chance, and a reader's first read may be its only one). It
// reports whether the reader is sequential.
func (ra *ReadAhead) read(ws *Workspace, ino, size, off, end uint64) bool {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	follows := ra.next != 0 && off+aheadSlack >= ra.next && off <= ra.next+aheadSlack
	if !follows {
		ra.window, ra.ahead, ra.next, ra.seq = 0, 0, end, 0
		return false
	}
	ra.next = max(ra.next, end)
	if ra.seq++; ra.seq < 2 {
		return false
	}
	if ra.window == 0 {
		ra.window = aheadFirst
	} else {
		ra.window = min(2*ra.window, aheadMax)
	}
	from := max(ra.ahead, (end+BlockSize-1)/BlockSize*BlockSize)
	for at := from; at < min(end+ra.window, size); at += aheadUnit {
		select {
		case aheadSlots <- struct{}{}:
		default:
			return true // all slots busy: the next read tries again from here
		}
		index := at / BlockSize
		if !ws.env.Store.Background(func() {
			defer func() { <-aheadSlots }()
			ws.prefetch(ino, index, aheadUnit/BlockSize)
		}) {
			<-aheadSlots
			return true
		}
		ra.ahead = at + aheadUnit
	}
	return true
}

// prefetch reads blocks [index, index+count) of ino ahead of a reader (see above).
func (ws *Workspace) prefetch(ino, index, count uint64) {
	ctx := store.LocalOnly(context.Background()) // never a remote fetch from here
	var ids []store.ID
	// Never wait for the lock: a writer (or a checkpoint, or a store closing under a held
	// lock) goes first, and this read-ahead is skipped.
	if !ws.mu.TryRLock() {
		return
	}
	n, err := ws.inode(ctx, ino)
	if err != nil || n.Inline || index*BlockSize >= n.Size {
		ws.mu.RUnlock()
		return
	}
	count = min(count, (n.Size+BlockSize-1)/BlockSize-index)
	for i := index; i < index+count && err == nil; i++ {
		var v []byte
		var stored bool
		v, stored, err = ws.get(ctx, BlockKey(ino, i))
		if stored && len(v) == len(store.ID{}) {
			ids = append(ids, store.ID(v))
		}
	}
	if err == nil {
		first := index * pagesPerBlock
		_ = ws.pageSpan(ino, first, first+count*pagesPerBlock-1, func(uint64, []byte) {})
	}
	ws.mu.RUnlock()
	for _, id := range ids {
		ws.env.Store.Prefetch(id)
	}
}
