// Package work is the working layer of agentfs: a branch's mutable state (its base tree plus
// an overlay of changed keys and working pages in Pebble) and the POSIX operations over it.
// Every operation is one Pebble batch that reaches the write-ahead log before it returns.
// The version model (commits, refs, fork, checkpoint, rollback, merge) is package branch,
// which owns workspaces and folds them into commits; the FUSE adapter (package fs) talks to
// this package only. See docs/architecture.md, "The write path".
package work

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/agentfs/agentfs/branch/tree"
	"github.com/agentfs/agentfs/internal/kv"
	"github.com/agentfs/agentfs/store"
)

// Env is what the working layer needs from the repository that owns it (package branch).
type Env struct {
	Store *store.Store
	Tree  *tree.Tree
	Now   func() time.Time
	Log   *log.Logger
	// AllocIno returns a fresh inode number, unique across the repository.
	AllocIno func() (uint64, error)
	// Op marks an operation in flight for garbage collection; call the result when done.
	Op func() func()
	// Admit checks that branch may grow by add before an operation runs (quotas); the
	// operation calls the returned function when done, saying whether it happened.
	Admit func(ctx context.Context, branch string, add Usage) (func(bool), error)
}

// Usage is an amount of data and inodes.
type Usage struct {
	Bytes, Inodes int64
}

// PfxOverlay starts overlay keys: 'W' overlay-id tree-key -> 0 = deleted, 1 + value = set.
const PfxOverlay = 'W'

// OverlayPrefix returns the Pebble key prefix of overlay id.
func OverlayPrefix(id uint64) []byte {
	k := make([]byte, 9)
	k[0] = PfxOverlay
	binary.BigEndian.PutUint64(k[1:], id)
	return k
}

// SkipPages is the metadata copy's skip function (store.SetMetadataCopySkip): it passes
// over the working pages of every overlay, which are file data, not metadata.
func SkipPages(k []byte) []byte {
	if len(k) < 10 || k[0] != PfxOverlay || k[9] != KindPage {
		return nil
	}
	to := append([]byte(nil), k[:10]...)
	to[9] = KindPage + 1
	return to
}

// Workspace is the live, mutable state of a branch: its base tree plus an overlay in Pebble
// holding every key changed since the base. Reads look in the overlay, then in the base.
// A Workspace made by View has no overlay and refuses writes.
//
// File operations return syscall.Errno values (wrapped where a message helps), so that the
// FUSE layer maps errors in one place.
type Workspace struct {
	env    *Env
	db     *pebble.DB    // where operations write
	rd     pebble.Reader // where overlay reads go: db, or a snapshot for a frozen copy
	name   string        // branch name; empty for a read-only view
	id     uint64        // overlay id
	prefix []byte        // overlay key prefix, guarded by mu (a new overlay after each checkpoint)
	// readOnly is set for a view of a commit (no overlay) and for a frozen copy of a
	// workspace (Freeze: its overlay as a snapshot saw it); it never changes.
	readOnly bool

	// ver counts the changes of the working state (every committed operation, every move
	// of the base), so that a fold of it can be reused until it changes (fold once).
	ver atomic.Uint64
	// folds counts folds of the working state (for tests and metrics); a frozen copy counts
	// in its parent's.
	folds  atomic.Uint64
	parent *Workspace

	// Journals of the keys changed while a checkpoint folds outside the lock (carry.go).
	journalMu  sync.Mutex
	journals   []*Journal
	journaling atomic.Int32 // len(journals), read without journalMu by every commit

	mu     sync.RWMutex
	cache  *lru.Cache[string, cached] // visible values by tree key; see get
	fresh  freshInodes                // inodes created here: their unwritten keys are absent
	ovl    overlayIndex               // the overlay's non-page keys: others are not asked of Pebble
	root   store.ID                   // tree root of the base commit
	base   store.ID                   // base commit
	gen    uint64                     // generation: rollbacks so far (see WriteSince)
	openMu sync.Mutex                 // guards open; taken inside mu, never the other way round
	open   map[uint64]int             // references per inode (see Open), for unlinked-but-open files
	hooks  map[uint64]func()          // reset hooks by id (OnReset); a mount removes its own
	hookID uint64

	lastUse atomic.Int64 // coarse unix seconds of the last use (idle.go)
	evicted atomic.Bool  // the engine dropped it (idle.go)
}

// cacheEntries bounds the workspace's cache of visible keys. A FUSE operation reads a few
// keys (inodes, dirents, the security.capability xattr the kernel asks for before every
// write); a Pebble Get of an overlay key plus a tree lookup costs several microseconds, the
// cache a map lookup.
const cacheEntries = 64 << 10

// cached is a visible value, or the knowledge that a key is absent.
type cached struct {
	v       []byte
	present bool
}

func newCache() *lru.Cache[string, cached] {
	c, _ := lru.New[string, cached](cacheEntries)
	return c
}

// New returns the working state of branch name: overlay id over the tree root of commit
// base.
func New(env *Env, name string, overlay uint64, root, base store.ID) *Workspace {
	ws := &Workspace{
		env: env, db: env.Store.DB(), rd: env.Store.DB(), name: name, id: overlay, prefix: OverlayPrefix(overlay),
		root: root, base: base, cache: newCache(), open: map[uint64]int{},
	}
	ws.Touch()
	return ws
}

// NewView returns a read-only view of the tree at root.
func NewView(env *Env, root store.ID) *Workspace {
	return &Workspace{env: env, db: env.Store.DB(), rd: env.Store.DB(), root: root, readOnly: true, cache: newCache(), open: map[uint64]int{}}
}

// Branch returns the branch name, or "" for a read-only view.
func (ws *Workspace) Branch() string { return ws.name }

// ReadOnly reports whether the workspace is a view of a commit.
func (ws *Workspace) ReadOnly() bool { return ws.readOnly }

// OnReset registers fn to run after a rollback or merge replaced the workspace's content, so
// a mount can drop kernel caches.
// The returned func removes it (a mount calls it when it unmounts).
func (ws *Workspace) OnReset(fn func()) (remove func()) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.hooks == nil {
		ws.hooks = map[uint64]func(){}
	}
	ws.hookID++
	id := ws.hookID
	ws.hooks[id] = fn
	return func() {
		ws.mu.Lock()
		delete(ws.hooks, id)
		ws.mu.Unlock()
	}
}

// hookList copies the reset hooks; callers hold mu.
func (ws *Workspace) hookList() []func() {
	out := make([]func(), 0, len(ws.hooks))
	for _, h := range ws.hooks {
		out = append(out, h)
	}
	return out
}

func (ws *Workspace) overlayKey(k []byte) []byte {
	return append(append(make([]byte, 0, len(ws.prefix)+len(k)), ws.prefix...), k...)
}

// get reads key from the cache, else from the overlay, then the base tree. Every write
// updates the cache when its batch commits (txn.commit), and a reset clears it, so the cache
// always holds what Pebble and the tree would return. Callers must not modify the result.
func (ws *Workspace) get(ctx context.Context, k []byte) ([]byte, bool, error) {
	ws.Touch()
	if c, ok := ws.cache.Get(string(k)); ok {
		return c.v, c.present, nil
	}
	if ws.fresh.absent(k) {
		return nil, false, nil
	}
	v, ok, err := ws.getUncached(ctx, k)
	if err == nil {
		ws.cache.Add(string(k), cached{v, ok})
	}
	return v, ok, err
}

func (ws *Workspace) getUncached(ctx context.Context, k []byte) ([]byte, bool, error) {
	if ws.prefix != nil {
		if hold, err := ws.ovl.mayHold(ws, k); err != nil {
			return nil, false, err
		} else if !hold {
			return ws.env.Tree.Get(ctx, ws.root, k)
		}
	}
	return ws.getDirect(ctx, k)
}

// getDirect reads key from the overlay, then the base tree, asking Pebble every time.
func (ws *Workspace) getDirect(ctx context.Context, k []byte) ([]byte, bool, error) {
	if ws.prefix != nil {
		v, ok, err := kv.Get(ws.rd, ws.overlayKey(k))
		if err != nil {
			return nil, false, err
		}
		if ok {
			if len(v) == 0 || v[0] == 0 {
				return nil, false, nil
			}
			return v[1:], true, nil
		}
	}
	return ws.env.Tree.Get(ctx, ws.root, k)
}

// scan calls fn for every visible key in [start, end) in order (nil end: to the end of the
// tree). k and v are only valid during the call.
func (ws *Workspace) scan(ctx context.Context, start, end []byte, fn func(k, v []byte) error) error {
	var oit *pebble.Iterator
	if ws.prefix != nil {
		upper := PrefixEnd(ws.prefix)
		if end != nil {
			upper = ws.overlayKey(end)
		}
		var err error
		if oit, err = ws.rd.NewIter(&pebble.IterOptions{LowerBound: ws.overlayKey(start), UpperBound: upper}); err != nil {
			return err
		}
		defer oit.Close()
		oit.First()
	}
	tit := ws.env.Tree.NewIter(ctx, ws.root, start)
	tok := tit.Next() && (end == nil || bytes.Compare(tit.Key(), end) < 0)
	for {
		ook := oit != nil && oit.Valid()
		if !ook && !tok {
			break
		}
		var c int
		switch {
		case !ook:
			c = 1
		case !tok:
			c = -1
		default:
			c = bytes.Compare(oit.Key()[len(ws.prefix):], tit.Key())
		}
		if c <= 0 {
			v := oit.Value()
			if len(v) > 0 && v[0] == 1 {
				if err := fn(oit.Key()[len(ws.prefix):], v[1:]); err != nil {
					return stopOK(err)
				}
			}
			oit.Next()
			if c == 0 {
				tok = tit.Next() && (end == nil || bytes.Compare(tit.Key(), end) < 0)
			}
			continue
		}
		if err := fn(tit.Key(), tit.Value()); err != nil {
			return stopOK(err)
		}
		tok = tit.Next() && (end == nil || bytes.Compare(tit.Key(), end) < 0)
	}
	if oit != nil {
		if err := oit.Error(); err != nil {
			return err
		}
	}
	return tit.Err()
}

func stopOK(err error) error {
	if err == tree.Stop {
		return nil
	}
	return err
}

// Txn stages the writes of one operation in a Pebble batch; reads see the staged values.
type Txn struct {
	ws     *Workspace
	b      *pebble.Batch
	staged map[string][]byte // nil value = deleted
	pages  map[pageID][]byte // working pages written (see data.go); not cached
	drops  []pageID          // pages deleted: ino, from index on (dropPages, dropPageRange)
	// created are the inode numbers this transaction allocated (freshInodes).
	created []uint64
}

func (ws *Workspace) begin() (*Txn, error) {
	if ws.readOnly {
		return nil, fmt.Errorf("%w: checkpoints cannot be changed; fork a branch from it", syscall.EROFS)
	}
	if ws.evicted.Load() {
		return nil, ws.errEvicted()
	}
	ws.Touch()
	return &Txn{ws: ws, b: ws.db.NewBatch(), staged: map[string][]byte{}}, nil
}

func (t *Txn) get(ctx context.Context, k []byte) ([]byte, bool, error) {
	if v, ok := t.staged[string(k)]; ok {
		return v, v != nil, nil
	}
	return t.ws.get(ctx, k)
}

func (t *Txn) set(k, v []byte) error {
	t.staged[string(k)] = v
	t.ws.ovl.add(k)
	return t.b.Set(t.ws.overlayKey(k), append([]byte{1}, v...), nil)
}

func (t *Txn) del(k []byte) error {
	t.staged[string(k)] = nil
	t.ws.ovl.add(k)
	return t.b.Set(t.ws.overlayKey(k), []byte{0}, nil)
}

// commit writes the batch to the write-ahead log before it returns (it then survives the
// death of the daemon); sync also makes it durable against a power cut.
func (t *Txn) commit(sync bool) error {
	defer t.abort()
	commit := t.ws.env.Store.CommitWritten
	if sync {
		commit = t.ws.env.Store.CommitDurable
	}
	if err := commit(t.b); err != nil {
		// What this operation read may be cached, what it wrote is not: nothing to undo.
		return err
	}
	t.ws.ver.Add(1)
	t.ws.fresh.add(t.created)
	for k, v := range t.staged {
		t.ws.cache.Add(k, cached{v, v != nil})
		t.ws.fresh.note(k, v != nil)
	}
	if t.ws.journaling.Load() > 0 {
		t.ws.journal(t)
	}
	return nil
}

// abort is idempotent: operations defer it after commit, and a Batch closed twice goes back
// to Pebble's pool twice, to be handed to two concurrent transactions.
func (t *Txn) abort() {
	if t.b != nil {
		t.b.Close()
		t.b = nil
	}
}

func (t *Txn) inode(ctx context.Context, ino uint64) (*Inode, error) {
	v, ok, err := t.get(ctx, InodeKey(ino))
	return InodeFrom(ino, v, ok, err)
}

func (t *Txn) putInode(n *Inode) error { return t.set(InodeKey(n.Ino), EncodeInode(n)) }

func InodeFrom(ino uint64, v []byte, ok bool, err error) (*Inode, error) {
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, syscall.ENOENT
	}
	n, err := DecodeInode(v)
	if err != nil {
		return nil, fmt.Errorf("inode %d: %w: %w", ino, syscall.EIO, err)
	}
	return n, nil
}

// mutations returns the overlay as sorted tree mutations, except working pages (fold.go).
func (ws *Workspace) mutations() ([]tree.Mutation, error) {
	it, err := ws.rd.NewIter(&pebble.IterOptions{LowerBound: ws.prefix, UpperBound: PrefixEnd(ws.prefix)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var muts []tree.Mutation
	for it.First(); it.Valid(); it.Next() {
		if it.Key()[len(ws.prefix)] == KindPage {
			continue
		}
		k := bytes.Clone(it.Key()[len(ws.prefix):])
		v := it.Value()
		if len(v) > 0 && v[0] == 1 {
			muts = append(muts, tree.Mutation{Key: k, Value: bytes.Clone(v[1:])})
		} else {
			muts = append(muts, tree.Mutation{Key: k, Delete: true})
		}
	}
	return muts, it.Error()
}

// replaceContent points the workspace at a base whose content differs from what it showed
// (rollback, merge, pull): the key cache no longer holds. Callers hold mu and have moved
// the branch (moveBase).
func (ws *Workspace) replaceContent(root, base store.ID) {
	ws.root, ws.base = root, base
	ws.ver.Add(1)
	ws.cache.Purge()
	ws.fresh.forget()
	ws.ovl.invalidate()
}

// Generation returns how many rollbacks the workspace has seen; a descriptor remembers it.
func (ws *Workspace) Generation() uint64 {
	ws.mu.RLock()
	defer ws.mu.RUnlock()
	return ws.gen
}

// Base returns the commit the working state starts from.
func (ws *Workspace) Base() store.ID {
	ws.mu.RLock()
	defer ws.mu.RUnlock()
	return ws.base
}

// Changed reports whether the branch has changes since its base.
func (ws *Workspace) Changed() (bool, error) {
	if ws.readOnly {
		return false, nil
	}
	ws.mu.RLock()
	defer ws.mu.RUnlock()
	it, err := ws.db.NewIter(&pebble.IterOptions{LowerBound: ws.prefix, UpperBound: PrefixEnd(ws.prefix)})
	if err != nil {
		return false, err
	}
	defer it.Close()
	return it.First(), it.Error()
}

// purgeOrphans removes inodes left with no links by a crash while they were open.
func (ws *Workspace) purgeOrphans(ctx context.Context) error {
	var orphans []uint64
	lo := ws.overlayKey([]byte{KindInode})
	it, err := ws.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: PrefixEnd(lo)})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		v := it.Value()
		if len(v) > 1 && v[0] == 1 {
			if n, err := DecodeInode(v[1:]); err == nil && n.Nlink == 0 {
				orphans = append(orphans, n.Ino)
			}
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil || len(orphans) == 0 {
		return err
	}
	t, err := ws.begin()
	if err != nil {
		return err
	}
	for _, ino := range orphans {
		if err := ws.removeInode(ctx, t, ino); err != nil {
			t.abort()
			return err
		}
	}
	return t.commit(false)
}

// removeInode deletes an inode with all its blocks and xattrs.
func (ws *Workspace) removeInode(ctx context.Context, t *Txn, ino uint64) error {
	n, err := t.inode(ctx, ino)
	if err != nil {
		return err
	}
	if !n.Inline { // inline content has no pages
		if err := t.dropPages(ino, 0, n.Size); err != nil {
			return err
		}
	}
	var keys [][]byte
	var prefixes [][]byte
	if xattrs, fresh := ws.fresh.list(ino, KindXattr); fresh { // no scan needed (fresh.go)
		for _, k := range xattrs {
			keys = append(keys, []byte(k))
		}
	} else {
		prefixes = append(prefixes, XattrPrefix(ino))
	}
	if n.IsRegular() && !n.Inline { // inline content has no blocks (truncate to 0 drops them all)
		prefixes = append(prefixes, BlockPrefix(ino))
	}
	for _, p := range prefixes {
		if err := ws.scan(ctx, p, PrefixEnd(p), func(k, v []byte) error {
			keys = append(keys, bytes.Clone(k))
			return nil
		}); err != nil {
			return err
		}
	}
	keys = append(keys, InodeKey(ino))
	for _, k := range keys {
		if err := t.del(k); err != nil {
			return err
		}
	}
	return nil
}

// NotifyChanged runs the reset hooks after a change made to the workspace outside a mount
// (a file written through the control API or MCP), so that mounts drop what the kernel
// cached of the old state. Callers hold no workspace locks.
func (ws *Workspace) NotifyChanged() {
	ws.mu.RLock()
	hooks := ws.hookList()
	ws.mu.RUnlock()
	for _, h := range hooks {
		h()
	}
}

// The methods below are for package branch, which changes a workspace's base (checkpoint,
// rollback, merge, pull) while it holds the workspace's lock.

// Lock takes the workspace's lock: no operation runs until Unlock.
func (ws *Workspace) Lock() { ws.mu.Lock() }

// Unlock releases Lock.
func (ws *Workspace) Unlock() { ws.mu.Unlock() }

// RLock takes the workspace's lock shared: operations that change it wait.
func (ws *Workspace) RLock() { ws.mu.RLock() }

// RUnlock releases RLock.
func (ws *Workspace) RUnlock() { ws.mu.RUnlock() }

// HeadLocked returns the tree root and commit the working state starts from. Callers hold
// the lock.
func (ws *Workspace) HeadLocked() (root, base store.ID) { return ws.root, ws.base }

// SetBaseLocked points the workspace at commit base whose tree root holds the same content
// the workspace shows (a checkpoint of it): the key cache stays. Callers hold the lock.
func (ws *Workspace) SetBaseLocked(root, base store.ID) {
	ws.root, ws.base = root, base
	ws.ver.Add(1)
	ws.ovl.invalidate()
}

// ReplaceContentLocked points the workspace at a base whose content differs from what it
// showed (rollback, merge, pull): the key cache no longer holds. Callers hold the lock and
// have moved the branch.
func (ws *Workspace) ReplaceContentLocked(root, base store.ID) { ws.replaceContent(root, base) }

// PurgeCacheLocked drops the key cache after the overlay was changed behind it.
func (ws *Workspace) PurgeCacheLocked() {
	ws.ver.Add(1)
	ws.cache.Purge()
	ws.fresh.forget()
	ws.ovl.invalidate()
}

// CacheLocked records visible values the caller wrote (tree mutations of a fold whose
// result became the base).
func (ws *Workspace) CacheLocked(muts []tree.Mutation) {
	for _, m := range muts {
		ws.cache.Add(string(m.Key), cached{m.Value, !m.Delete})
		ws.fresh.note(string(m.Key), !m.Delete)
	}
}

// NewGenerationLocked starts a new generation after a rollback: descriptors opened before it
// write no more (see WriteSince).
func (ws *Workspace) NewGenerationLocked() { ws.gen++ }

// HooksLocked returns a copy of the reset hooks (OnReset), to run once no lock is held.
func (ws *Workspace) HooksLocked() []func() { return ws.hookList() }

// OverlayID returns the id of the overlay holding the working state. Callers hold the lock.
func (ws *Workspace) OverlayID() uint64 { return ws.id }

// OverlayKey returns the Pebble key of tree key k in the workspace's overlay.
func (ws *Workspace) OverlayKey(k []byte) []byte { return ws.overlayKey(k) }

// SetOverlayLocked moves the working state to a fresh, empty overlay id (after the branch
// dropped the old one in the same batch that moved its base).
func (ws *Workspace) SetOverlayLocked(id uint64) {
	ws.id, ws.prefix = id, OverlayPrefix(id)
	ws.ver.Add(1)
	ws.ovl.invalidate()
}

// FoldLocked writes the working state as a tree and returns its root and how many keys
// changed (see fold). Callers hold the lock.
func (ws *Workspace) FoldLocked(ctx context.Context) (store.ID, int, error) { return ws.fold(ctx) }

// FoldBlocksLocked is FoldLocked that also returns the block entries made of working pages.
func (ws *Workspace) FoldBlocksLocked(ctx context.Context) (store.ID, int, []tree.Mutation, error) {
	return ws.foldBlocks(ctx)
}

// GetLocked returns the visible value of tree key k. Callers hold the lock, or ws is a view.
func (ws *Workspace) GetLocked(ctx context.Context, k []byte) ([]byte, bool, error) {
	return ws.get(ctx, k)
}

// ScanLocked calls fn for every visible key in [start, end) (see scan).
func (ws *Workspace) ScanLocked(ctx context.Context, start, end []byte, fn func(k, v []byte) error) error {
	return ws.scan(ctx, start, end, fn)
}

// InodeLocked returns inode ino. Callers hold the lock, or ws is a view.
func (ws *Workspace) InodeLocked(ctx context.Context, ino uint64) (*Inode, error) {
	return ws.inode(ctx, ino)
}

// Begin starts a change of the overlay. Callers hold the lock.
func (ws *Workspace) Begin() (*Txn, error) { return ws.begin() }

// Set stages key k = v.
func (t *Txn) Set(k, v []byte) error { return t.set(k, v) }

// Del stages the deletion of key k.
func (t *Txn) Del(k []byte) error { return t.del(k) }

// Batch returns the Pebble batch, for keys outside the overlay that must commit with it.
func (t *Txn) Batch() *pebble.Batch { return t.b }

// Commit writes the change to the write-ahead log; sync also makes it durable.
func (t *Txn) Commit(sync bool) error { return t.commit(sync) }

// Abort drops the change; it is a no-op after Commit.
func (t *Txn) Abort() { t.abort() }

// PurgeOrphans removes inodes left with no links by a crash while they were open.
func (ws *Workspace) PurgeOrphans(ctx context.Context) error { return ws.purgeOrphans(ctx) }

// RootLocked returns the tree root of the base. Callers hold the lock, or ws is a view.
func (ws *Workspace) RootLocked() store.ID { return ws.root }

// BaseLocked returns the base commit. Callers hold the lock.
func (ws *Workspace) BaseLocked() store.ID { return ws.base }

// VersionLocked returns a number that changes whenever the working state does (an operation
// committed, the base moved): a fold made at the same version is still the state's fold.
// Callers hold the lock.
func (ws *Workspace) VersionLocked() uint64 { return ws.ver.Load() }

// FoldCount returns how many times the working state was folded (tests check that forks
// and diffs of an unchanged branch fold once).
func (ws *Workspace) FoldCount() uint64 { return ws.folds.Load() }

// FreezeLocked returns a read-only copy of the working state as snap (a Pebble snapshot
// taken while the caller holds the lock) sees it: reads of it stay the same while the
// workspace goes on changing. It writes nothing; close snap when done with the copy.
func (ws *Workspace) FreezeLocked(snap pebble.Reader) *Workspace {
	return &Workspace{
		env: ws.env, db: ws.db, rd: snap, name: ws.name, id: ws.id, prefix: ws.prefix, readOnly: true, parent: ws,
		root: ws.root, base: ws.base, cache: newCache(), open: map[uint64]int{},
	}
}

// FoldScratchLocked folds the working state into t without writing to the repository: t
// keeps the tree nodes (tree.NewScratch), and a block made of working pages is only hashed,
// so the tree it returns serves tree diffs but not reads of those blocks (read them through
// FreezeLocked). Callers hold the lock.
func (ws *Workspace) FoldScratchLocked(ctx context.Context, t *tree.Tree) (store.ID, int, error) {
	root, n, _, err := ws.foldInto(ctx, t, func(_ context.Context, data []byte) (store.ID, error) {
		return store.Sum(data), nil
	})
	return root, n, err
}
