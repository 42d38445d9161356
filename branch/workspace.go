package branch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"

	"github.com/cockroachdb/pebble/v2"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/agentfs/agentfs/branch/tree"
	"github.com/agentfs/agentfs/store"
)

// Workspace is the live, mutable state of a branch: its base tree plus an overlay in Pebble
// holding every key changed since the base. Reads look in the overlay, then in the base.
// A Workspace made by View has no overlay and refuses writes.
//
// File operations return syscall.Errno values (wrapped where a message helps), so that the
// FUSE layer maps errors in one place.
type Workspace struct {
	e      *Engine
	name   string // branch name; empty for a read-only view
	id     uint64 // overlay id
	prefix []byte // overlay key prefix, guarded by mu (a new overlay after each checkpoint)
	// readOnly is set for a view of a commit, which has no overlay; it never changes.
	readOnly bool

	mu     sync.RWMutex
	cache  *lru.Cache[string, cached] // visible values by tree key; see get
	root   store.ID                   // tree root of the base commit
	base   store.ID                   // base commit
	gen    uint64                     // generation: rollbacks so far (see WriteSince)
	openMu sync.Mutex                 // guards open; taken inside mu, never the other way round
	open   map[uint64]int             // references per inode (see Open), for unlinked-but-open files
	hooks  []func()
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

func newWorkspace(e *Engine, br *Branch, root store.ID) *Workspace {
	return &Workspace{
		e: e, name: br.Name, id: br.ID, prefix: overlayPrefix(br.ID),
		root: root, base: br.Base, cache: newCache(), open: map[uint64]int{},
	}
}

func newView(e *Engine, root store.ID) *Workspace {
	return &Workspace{e: e, root: root, readOnly: true, cache: newCache(), open: map[uint64]int{}}
}

// Branch returns the branch name, or "" for a read-only view.
func (ws *Workspace) Branch() string { return ws.name }

// ReadOnly reports whether the workspace is a view of a commit.
func (ws *Workspace) ReadOnly() bool { return ws.readOnly }

// OnReset registers fn to run after a rollback or merge replaced the workspace's content, so
// a mount can drop kernel caches.
func (ws *Workspace) OnReset(fn func()) {
	ws.mu.Lock()
	ws.hooks = append(ws.hooks, fn)
	ws.mu.Unlock()
}

func (ws *Workspace) overlayKey(k []byte) []byte {
	return append(append(make([]byte, 0, len(ws.prefix)+len(k)), ws.prefix...), k...)
}

// get reads key from the cache, else from the overlay, then the base tree. Every write
// updates the cache when its batch commits (txn.commit), and a reset clears it, so the cache
// always holds what Pebble and the tree would return. Callers must not modify the result.
func (ws *Workspace) get(ctx context.Context, k []byte) ([]byte, bool, error) {
	if c, ok := ws.cache.Get(string(k)); ok {
		return c.v, c.present, nil
	}
	v, ok, err := ws.getUncached(ctx, k)
	if err == nil {
		ws.cache.Add(string(k), cached{v, ok})
	}
	return v, ok, err
}

func (ws *Workspace) getUncached(ctx context.Context, k []byte) ([]byte, bool, error) {
	if !ws.readOnly {
		v, ok, err := ws.e.getKey(ws.overlayKey(k))
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
	return ws.e.tree.Get(ctx, ws.root, k)
}

// scan calls fn for every visible key in [start, end) in order (nil end: to the end of the
// tree). k and v are only valid during the call.
func (ws *Workspace) scan(ctx context.Context, start, end []byte, fn func(k, v []byte) error) error {
	var oit *pebble.Iterator
	if !ws.readOnly {
		upper := prefixEnd(ws.prefix)
		if end != nil {
			upper = ws.overlayKey(end)
		}
		var err error
		if oit, err = ws.e.db.NewIter(&pebble.IterOptions{LowerBound: ws.overlayKey(start), UpperBound: upper}); err != nil {
			return err
		}
		defer oit.Close()
		oit.First()
	}
	tit := ws.e.tree.NewIter(ctx, ws.root, start)
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

// txn stages the writes of one operation in a Pebble batch; reads see the staged values.
type txn struct {
	ws     *Workspace
	b      *pebble.Batch
	staged map[string][]byte // nil value = deleted
	pages  map[pageID][]byte // working pages written (see data.go); not cached
}

func (ws *Workspace) begin() (*txn, error) {
	if ws.readOnly {
		return nil, fmt.Errorf("%w: checkpoints cannot be changed; fork a branch from it", syscall.EROFS)
	}
	return &txn{ws: ws, b: ws.e.db.NewBatch(), staged: map[string][]byte{}, pages: map[pageID][]byte{}}, nil
}

func (t *txn) get(ctx context.Context, k []byte) ([]byte, bool, error) {
	if v, ok := t.staged[string(k)]; ok {
		return v, v != nil, nil
	}
	return t.ws.get(ctx, k)
}

func (t *txn) set(k, v []byte) error {
	t.staged[string(k)] = v
	return t.b.Set(t.ws.overlayKey(k), append([]byte{1}, v...), nil)
}

func (t *txn) del(k []byte) error {
	t.staged[string(k)] = nil
	return t.b.Set(t.ws.overlayKey(k), []byte{0}, nil)
}

// commit writes the batch to the write-ahead log before it returns (it then survives the
// death of the daemon); sync also makes it durable against a power cut.
func (t *txn) commit(sync bool) error {
	defer t.abort()
	commit := t.ws.e.st.CommitWritten
	if sync {
		commit = t.ws.e.st.CommitDurable
	}
	if err := commit(t.b); err != nil {
		// What this operation read may be cached, what it wrote is not: nothing to undo.
		return err
	}
	for k, v := range t.staged {
		t.ws.cache.Add(k, cached{v, v != nil})
	}
	return nil
}

// abort is idempotent: operations defer it after commit, and a Batch closed twice goes back
// to Pebble's pool twice, to be handed to two concurrent transactions.
func (t *txn) abort() {
	if t.b != nil {
		t.b.Close()
		t.b = nil
	}
}

func (t *txn) inode(ctx context.Context, ino uint64) (*Inode, error) {
	v, ok, err := t.get(ctx, inodeKey(ino))
	return inodeFrom(ino, v, ok, err)
}

func (t *txn) putInode(n *Inode) error { return t.set(inodeKey(n.Ino), encodeInode(n)) }

func inodeFrom(ino uint64, v []byte, ok bool, err error) (*Inode, error) {
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, syscall.ENOENT
	}
	n, err := decodeInode(v)
	if err != nil {
		return nil, fmt.Errorf("inode %d: %w: %w", ino, syscall.EIO, err)
	}
	return n, nil
}

// mutations returns the overlay as sorted tree mutations, except working pages (fold.go).
func (ws *Workspace) mutations() ([]tree.Mutation, error) {
	it, err := ws.e.db.NewIter(&pebble.IterOptions{LowerBound: ws.prefix, UpperBound: prefixEnd(ws.prefix)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var muts []tree.Mutation
	for it.First(); it.Valid(); it.Next() {
		if it.Key()[len(ws.prefix)] == kindPage {
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

// checkpointWith folds the working state into a commit carrying o's provenance and the
// summary of the paths changed since the base (their list is returned too; the diff walks
// only what changed).
func (ws *Workspace) checkpointWith(ctx context.Context, o CheckpointOptions) (store.ID, []Change, error) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	root, _, blocks, err := ws.foldBlocks(ctx)
	if err != nil {
		return store.ID{}, nil, err
	}
	changes, err := ws.e.DiffRoots(ctx, ws.root, root)
	if err != nil {
		return store.ID{}, nil, err
	}
	b := ws.e.db.NewBatch()
	defer b.Close()
	c := &Commit{Root: root, Parents: []store.ID{ws.base}, Time: ws.e.now().UTC(), Branch: ws.name, Name: o.Name, Message: o.Message,
		Provenance: o.Provenance, Files: CountChanges(changes)}
	id, err := ws.e.writeCommit(ctx, b, c)
	if err != nil {
		return store.ID{}, nil, err
	}
	if o.Name != "" {
		if err := b.Set(nameKey(ws.name, o.Name), id[:], nil); err != nil {
			return store.ID{}, nil, err
		}
	}
	if err := ws.moveBase(b, id); err != nil {
		return store.ID{}, nil, err
	}
	ws.root, ws.base = root, id
	for _, m := range blocks {
		ws.cache.Add(string(m.Key), cached{m.Value, !m.Delete})
	}
	return id, changes, nil
}

// CountChanges sums a diff by kind.
func CountChanges(changes []Change) FileCounts {
	var f FileCounts
	for _, c := range changes {
		switch c.Kind {
		case "added":
			f.Created++
		case "modified":
			f.Modified++
		case "deleted":
			f.Deleted++
		}
	}
	return f
}

// replaceContent points the workspace at a base whose content differs from what it showed
// (rollback, merge, pull): the key cache no longer holds. Callers hold mu and have moved
// the branch (moveBase).
func (ws *Workspace) replaceContent(root, base store.ID) {
	ws.root, ws.base = root, base
	ws.cache.Purge()
}

// moveBase commits b (synced) together with dropping the overlay and pointing the branch at
// commit id.
func (ws *Workspace) moveBase(b *pebble.Batch, id store.ID) error {
	defer ws.e.lockBranch(ws.name)()
	br, err := ws.e.GetBranch(ws.name)
	if err != nil {
		return err
	}
	if br.ID != ws.id {
		return fmt.Errorf("branch %q was deleted and re-created: %w", ws.name, ErrNotFound)
	}
	// The working state restarts in a fresh overlay. Reusing the old key range would make
	// every later scan of it step over the range-deleted keys until Pebble compacts them:
	// after a 100k-file import, a one-file checkpoint would take tens of milliseconds.
	newID, err := ws.e.newBranchID()
	if err != nil {
		return err
	}
	br.Base, br.ID = id, newID
	if err := b.DeleteRange(ws.prefix, prefixEnd(ws.prefix), nil); err != nil {
		return err
	}
	if err := b.Set(refKey(ws.name), encodeBranch(br), nil); err != nil {
		return err
	}
	beforeRefCommit(ws.name)
	if err := ws.e.st.CommitDurable(b); err != nil {
		return err
	}
	ws.id, ws.prefix = newID, overlayPrefix(newID)
	return nil
}

// snapshotCommit returns a commit of the current state without changing the branch: its base
// when nothing changed, else a new commit folding the overlay in.
func (ws *Workspace) snapshotCommit(ctx context.Context, msg string) (store.ID, error) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	root, n, err := ws.fold(ctx)
	if err != nil {
		return store.ID{}, err
	}
	if n == 0 {
		return ws.base, ws.e.st.Retain(ctx, ws.base)
	}
	b := ws.e.db.NewBatch()
	defer b.Close()
	id, err := ws.e.writeCommit(ctx, b, &Commit{Root: root, Parents: []store.ID{ws.base}, Time: ws.e.now().UTC(), Branch: ws.name, Message: msg})
	if err != nil {
		return store.ID{}, err
	}
	return id, b.Commit(pebble.NoSync)
}

// currentRoot returns the root of a tree holding the current state (writing tree nodes for
// the overlay if there is one).
func (ws *Workspace) currentRoot(ctx context.Context) (store.ID, error) {
	if ws.readOnly {
		return ws.root, nil
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	root, _, err := ws.fold(ctx)
	return root, err
}

// reset drops the working state and points the branch at commit target.
// It returns the reset hooks for the caller to run once it holds no locks.
func (ws *Workspace) reset(ctx context.Context, target store.ID) ([]func(), error) {
	c, err := ws.e.ReadCommit(ctx, target)
	if err != nil {
		return nil, err
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	b := ws.e.db.NewBatch()
	defer b.Close()
	if err := ws.moveBase(b, target); err != nil {
		return nil, err
	}
	ws.replaceContent(c.Root, target)
	ws.gen++
	return append([]func(){}, ws.hooks...), nil
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
	it, err := ws.e.db.NewIter(&pebble.IterOptions{LowerBound: ws.prefix, UpperBound: prefixEnd(ws.prefix)})
	if err != nil {
		return false, err
	}
	defer it.Close()
	return it.First(), it.Error()
}

// purgeOrphans removes inodes left with no links by a crash while they were open.
func (ws *Workspace) purgeOrphans(ctx context.Context) error {
	var orphans []uint64
	lo := ws.overlayKey([]byte{kindInode})
	it, err := ws.e.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		v := it.Value()
		if len(v) > 1 && v[0] == 1 {
			if n, err := decodeInode(v[1:]); err == nil && n.Nlink == 0 {
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
func (ws *Workspace) removeInode(ctx context.Context, t *txn, ino uint64) error {
	if err := t.dropPages(ino, 0); err != nil {
		return err
	}
	var keys [][]byte
	for _, p := range [][]byte{blockPrefix(ino), xattrPrefix(ino)} {
		if err := ws.scan(ctx, p, prefixEnd(p), func(k, v []byte) error {
			keys = append(keys, bytes.Clone(k))
			return nil
		}); err != nil {
			return err
		}
	}
	keys = append(keys, inodeKey(ino))
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
	hooks := append([]func(){}, ws.hooks...)
	ws.mu.RUnlock()
	for _, h := range hooks {
		h()
	}
}
