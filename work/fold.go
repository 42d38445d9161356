package work

import (
	"bytes"
	"context"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/cockroachdb/pebble/v2"

	"github.com/agentfs/agentfs/branch/tree"
	"github.com/agentfs/agentfs/store"
)

// fold writes the working state as a tree and returns its root and how many keys changed.
// Working pages become content-addressed blocks here, and only here: each 64 KiB block with
// pages is read, patched, hashed, compressed and stored by one worker per core. A block that
// comes out all zeros is a hole. The overlay is not changed (a checkpoint drops it after).
// Callers hold ws.mu.
func (ws *Workspace) fold(ctx context.Context) (store.ID, int, error) {
	root, n, _, err := ws.foldBlocks(ctx)
	return root, n, err
}

// foldBlocks is fold that also returns the block entries it made of working pages: a caller
// that drops the overlay (checkpoint) puts them in the key cache, which still holds the
// blocks the pages covered.
func (ws *Workspace) foldBlocks(ctx context.Context) (store.ID, int, []tree.Mutation, error) {
	return ws.foldInto(ctx, ws.env.Tree, ws.env.Store.Put)
}

// foldHook, when set (SetFoldHook), runs at the start of every fold.
var foldHook atomic.Pointer[func(branch string)]

// SetFoldHook makes every fold of a branch's working state call fn with the branch's name
// before it reads the overlay; nil removes it. Tests pause a fold there to check what waits
// for it.
func SetFoldHook(fn func(branch string)) {
	if fn == nil {
		foldHook.Store(nil)
		return
	}
	foldHook.Store(&fn)
}

// putFunc stores a folded block and returns its ID.
type putFunc func(ctx context.Context, data []byte) (store.ID, error)

// foldInto is foldBlocks writing tree nodes to t and blocks with put.
func (ws *Workspace) foldInto(ctx context.Context, t *tree.Tree, put putFunc) (store.ID, int, []tree.Mutation, error) {
	if ws.parent != nil {
		ws.parent.folds.Add(1)
	} else {
		ws.folds.Add(1)
	}
	if h := foldHook.Load(); h != nil {
		(*h)(ws.name)
	}
	muts, err := ws.mutations()
	if err != nil {
		return store.ID{}, 0, nil, err
	}
	blocks, err := ws.foldPages(ctx, put)
	if err != nil {
		return store.ID{}, 0, nil, err
	}
	if len(blocks) > 0 {
		// A block's fold result replaces any overlay entry of the same key.
		byKey := make(map[string]int, len(muts))
		for i, m := range muts {
			byKey[string(m.Key)] = i
		}
		for _, m := range blocks {
			if i, ok := byKey[string(m.Key)]; ok {
				muts[i] = m
			} else {
				muts = append(muts, m)
			}
		}
		sort.Slice(muts, func(i, j int) bool { return bytes.Compare(muts[i].Key, muts[j].Key) < 0 })
	}
	root, err := t.Apply(ctx, ws.root, muts)
	return root, len(muts), blocks, err
}

// foldJob is one block with working pages.
type foldJob struct {
	ino, index uint64
	pages      map[uint64][]byte // page index within the block -> stored bytes
}

// foldSlots bounds the blocks being folded at once in the whole daemon, however many
// branches fold at the same time (checkpoints, merges, forks and diffs of several branches):
// a block in flight holds its pages, the patched block and its compressed copy (up to about
// 200 KiB), so the slots bound the fold's buffers to a few MiB per daemon, while keeping
// every core hashing and compressing.
var foldSlots = make(chan struct{}, 2*runtime.GOMAXPROCS(0))

// foldHeld counts the blocks in flight, and foldPeak the most at once (FoldPeak).
var foldHeld, foldPeak atomic.Int64

// acquireFoldSlot takes a slot for one block; it fails only when ctx ends.
func acquireFoldSlot(ctx context.Context) bool {
	select {
	case foldSlots <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	n := foldHeld.Add(1)
	for p := foldPeak.Load(); n > p && !foldPeak.CompareAndSwap(p, n); p = foldPeak.Load() {
	}
	return true
}

func releaseFoldSlot() {
	foldHeld.Add(-1)
	<-foldSlots
}

// FoldPeak returns the most blocks held in flight at once by all folds since the last call,
// and the daemon's bound on it (tests).
func FoldPeak() (peak, bound int) {
	return int(foldPeak.Swap(0)), cap(foldSlots)
}

// foldPages turns every block with working pages into a block mutation. Pages are read in
// key order and handed out block by block, each holding one of the daemon's fold slots until
// it is stored, so memory stays at a few blocks per core whatever the number of folds.
func (ws *Workspace) foldPages(ctx context.Context, put putFunc) ([]tree.Mutation, error) {
	lo := ws.overlayKey([]byte{KindPage})
	it, err := ws.rd.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: PrefixEnd(lo)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		out   []tree.Mutation
		first error
		wg    sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
			cancel()
		}
		mu.Unlock()
	}
	jobs := make(chan *foldJob, 2*runtime.GOMAXPROCS(0))
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if ctx.Err() != nil {
					releaseFoldSlot()
					continue
				}
				m, ok, err := ws.foldBlock(ctx, j, put)
				releaseFoldSlot()
				if err != nil {
					fail(err)
					continue
				}
				if ok {
					mu.Lock()
					out = append(out, m)
					mu.Unlock()
				}
			}
		}()
	}
	var cur *foldJob
	for it.First(); it.Valid() && ctx.Err() == nil; it.Next() {
		k := it.Key()[len(ws.prefix):]
		v := it.Value()
		if len(v) == 0 || v[0] != 1 {
			continue
		}
		ino, page := KeyIno(k), keyPage(k)
		if cur == nil || cur.ino != ino || cur.index != page/pagesPerBlock {
			if cur != nil {
				jobs <- cur // its worker releases its slot
				cur = nil
			}
			if !acquireFoldSlot(ctx) {
				break
			}
			cur = &foldJob{ino: ino, index: page / pagesPerBlock, pages: map[uint64][]byte{}}
		}
		cur.pages[page%pagesPerBlock] = bytes.Clone(v[1:])
	}
	if cur != nil {
		jobs <- cur
	}
	close(jobs)
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = ctx.Err() // the caller's context ended: the fold is not whole
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	return out, first
}

// foldBlock applies a job's pages to its block and stores the result.
func (ws *Workspace) foldBlock(ctx context.Context, j *foldJob, put putFunc) (tree.Mutation, bool, error) {
	key := BlockKey(j.ino, j.index)
	n, err := ws.inode(ctx, j.ino)
	if err == syscall.ENOENT {
		return tree.Mutation{}, false, nil // removed; its pages go with the overlay
	}
	if err != nil {
		return tree.Mutation{}, false, err
	}
	start := j.index * BlockSize
	if n.Inline || start >= n.Size {
		return tree.Mutation{Key: key, Delete: true}, true, nil
	}
	block := make([]byte, BlockSize)
	stored, err := ws.storedBlock(ctx, j.ino, j.index, nil)
	if err != nil {
		return tree.Mutation{}, false, err
	}
	copy(block, stored)
	for p, v := range j.pages {
		page := block[p*PageSize : (p+1)*PageSize]
		clear(page[copy(page, v):])
	}
	block = block[:min(uint64(BlockSize), n.Size-start)]
	if IsZero(block) {
		return tree.Mutation{Key: key, Delete: true}, true, nil
	}
	id, err := put(ctx, block)
	if err != nil {
		return tree.Mutation{}, false, err
	}
	return tree.Mutation{Key: key, Value: id[:]}, true, nil
}

func IsZero(b []byte) bool {
	for len(b) >= 8 {
		if b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
