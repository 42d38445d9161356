package branch

// Support for garbage collection and fsck (package gc): the roots of a repository, a walk
// over everything they reach, pins for mounted checkpoints, checkpoint pruning, and the
// protection of commits revived while a collection runs.
//
// Safety argument (see also BeginGC). BeginGC opens the store's window and snapshots the
// roots at a moment when no operation is in flight. A block that a live version references
// after that moment got its reference
//
//  1. from the snapshot's roots (it is marked), or
//  2. from a Put or Retain during the window (the window spares it), or
//  3. by being a child of a node written during the window: Apply keeps the unchanged
//     children of the tree it starts from, which is a branch's current tree, which is
//     reachable from the snapshot or was itself written or revived during the window, or
//  4. by reviving an old commit: fork or rollback to a checkpoint id, or mounting one.
//     Retain spares only the commit block, not its tree. So a commit that is not a root in
//     the snapshot is revived with retainTree, which Retains every block of its tree while
//     the window is open (and fails if one is already gone). Pin does the same.
//
// Pebble keys added by this file:
//
//	'P' commit-id -> empty: the checkpoint is pruned; gc keeps the commit, not its tree

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path"
	"sort"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/agentfs/agentfs/branch/tree"
	"github.com/agentfs/agentfs/store"
)

const pfxPruned = 'P'

// ErrPruned means a checkpoint's files were pruned: only its history entry is left.
var ErrPruned = fmt.Errorf("pruned: %w", ErrNotFound)

func prunedKey(id store.ID) []byte { return append([]byte{pfxPruned}, id[:]...) }

// gcState is the engine's part of a running collection and the pins of mounted views.
type gcState struct {
	mu     sync.Mutex
	window *store.Window       // the open collection's window, nil when none runs
	roots  map[store.ID]bool   // commits that are roots in the collection's snapshot
	pins   map[store.ID]int    // pinned commits (mounted read-only views) and pin counts
	pinned map[store.ID]string // why, for fsck and gc reports
}

// gcBegan is called by BeginGC with opMu held exclusively.
func (e *Engine) gcBegan(w *store.Window, snap *pebble.Snapshot) error {
	roots, err := e.Roots(snap)
	if err != nil {
		return err
	}
	e.gc.mu.Lock()
	defer e.gc.mu.Unlock()
	e.gc.window = w
	e.gc.roots = map[store.ID]bool{}
	for _, r := range roots {
		if !r.Commit.IsZero() {
			e.gc.roots[r.Commit] = true
		}
	}
	return nil
}

// EndGC ends a collection begun with BeginGC: it ends the window and the protection of
// revived commits. Call it instead of w.End.
func (e *Engine) EndGC(w *store.Window) {
	e.gc.mu.Lock()
	if e.gc.window == w {
		e.gc.window, e.gc.roots = nil, nil
	}
	e.gc.mu.Unlock()
	w.End()
}

// needsTreeRetain reports whether reviving commit id must retain its whole tree: a
// collection runs and id is not a root in its snapshot.
func (e *Engine) needsTreeRetain(id store.ID) bool {
	e.gc.mu.Lock()
	defer e.gc.mu.Unlock()
	return e.gc.window != nil && !e.gc.roots[id]
}

// retainCommit is Retain for a commit that is about to become referenced again (the base of
// a fork or a rollback). The caller holds op.
func (e *Engine) retainCommit(ctx context.Context, id store.ID) error {
	if err := e.checkNotPruned(id); err != nil {
		return err
	}
	if !e.needsTreeRetain(id) {
		return e.st.Retain(ctx, id)
	}
	return e.retainTree(ctx, id)
}

// retainTree Retains everything a collection would mark from commit id (its tree, its
// history and the trees of unpruned ancestors, stopping at commits that are roots in the
// collection's snapshot, which it marks itself), so that a running collection spares them.
// It fails if a block is already gone. Its cost follows what only id reaches.
//
// Commit blocks are retained last, id the very last, and only once everything below them
// was: a revive that fails part-way must leave the commit unrecorded, so that the sweep
// deletes it and no later revive (when no collection runs and only the commit block is
// checked) can use a tree the sweep has already cut.
func (e *Engine) retainTree(ctx context.Context, id store.ID) error {
	e.gc.mu.Lock()
	roots := e.gc.roots // not modified while the window is open
	e.gc.mu.Unlock()
	w := e.NewWalker(e.db, nil)
	seen := map[store.ID]bool{}
	var commits []store.ID
	var first error
	w.Enter = func(o *Object) bool {
		if first != nil || seen[o.ID] || o.Kind == ObjCommit && o.ID != id && roots[o.ID] {
			return false
		}
		seen[o.ID] = true
		if o.Kind == ObjCommit {
			if o.ID != id {
				commits = append(commits, o.ID)
			}
			return true
		}
		if err := e.st.Retain(ctx, o.ID); err != nil {
			first = fmt.Errorf("checkpoint %s is being garbage collected (%s %s: %w)", id, o.Kind, o.ID, err)
			return false
		}
		return true
	}
	w.Broken = func(o *Object, err error) error {
		return fmt.Errorf("checkpoint %s is being garbage collected (%s %s: %w)", id, o.Kind, o.ID, err)
	}
	if err := w.Walk(ctx, Root{Kind: RootPin, Commit: id}); err != nil {
		return err
	}
	if first != nil {
		return first
	}
	for _, c := range append(commits, id) {
		if err := e.st.Retain(ctx, c); err != nil {
			return fmt.Errorf("checkpoint %s is being garbage collected (checkpoint %s: %w)", id, c, err)
		}
	}
	return nil
}

func (e *Engine) checkNotPruned(id store.ID) error {
	if ok, err := e.IsPruned(id); err != nil {
		return err
	} else if ok {
		return fmt.Errorf("checkpoint %s: %w; its files were removed by 'checkpoint prune' and gc (fork from a later checkpoint)", id, ErrPruned)
	}
	return nil
}

// IsPruned reports whether checkpoint id was pruned (agentfs log marks it).
func (e *Engine) IsPruned(id store.ID) (bool, error) {
	_, ok, err := e.getKey(prunedKey(id))
	return ok, err
}

// Pin keeps commit id and its tree from garbage collection until unpin is called; mounts of
// checkpoints use it, since a mounted checkpoint may be otherwise unreachable. If a
// collection is running, the tree is retained first, and Pin fails if the collection
// already deleted part of it.
func (e *Engine) Pin(ctx context.Context, id store.ID, why string) (unpin func(), err error) {
	defer e.op()()
	if err := e.checkNotPruned(id); err != nil {
		return nil, err
	}
	e.gc.mu.Lock()
	if e.gc.pins == nil {
		e.gc.pins, e.gc.pinned = map[store.ID]int{}, map[store.ID]string{}
	}
	e.gc.pins[id]++
	e.gc.pinned[id] = why
	e.gc.mu.Unlock()
	unpin = func() {
		e.gc.mu.Lock()
		defer e.gc.mu.Unlock()
		if e.gc.pins[id]--; e.gc.pins[id] <= 0 {
			delete(e.gc.pins, id)
			delete(e.gc.pinned, id)
		}
	}
	if err := e.st.Retain(ctx, id); err != nil {
		unpin()
		return nil, err
	}
	if e.needsTreeRetain(id) {
		if err := e.retainTree(ctx, id); err != nil {
			unpin()
			return nil, err
		}
	}
	return sync.OnceFunc(unpin), nil
}

// PinView is View plus Pin: a read-only view of commit that garbage collection leaves alone
// until unpin is called.
func (e *Engine) PinView(ctx context.Context, commit store.ID, why string) (*Workspace, func(), error) {
	unpin, err := e.Pin(ctx, commit, why)
	if err != nil {
		return nil, nil, err
	}
	ws, err := e.View(ctx, commit)
	if err != nil {
		unpin()
		return nil, nil, err
	}
	return ws, unpin, nil
}

// RootKind says what makes a Root live.
type RootKind string

const (
	RootBranch     RootKind = "branch"     // a branch's base commit (and its history)
	RootOverlay    RootKind = "overlay"    // a branch's working overlay
	RootCheckpoint RootKind = "checkpoint" // a named checkpoint
	RootPin        RootKind = "pin"        // a pinned (mounted) checkpoint
)

// Root is one garbage-collection root.
type Root struct {
	Kind    RootKind
	Branch  string   // owning branch; "" for a pin or an overlay without a branch
	Name    string   // checkpoint name (RootCheckpoint) or why it is pinned (RootPin)
	Commit  store.ID // zero for an overlay
	Overlay uint64   // RootOverlay: the overlay id
}

func (r Root) String() string {
	switch r.Kind {
	case RootBranch:
		return "branch " + r.Branch
	case RootOverlay:
		if r.Branch == "" {
			return fmt.Sprintf("overlay %d (no branch)", r.Overlay)
		}
		return "branch " + r.Branch + " (uncheckpointed changes)"
	case RootCheckpoint:
		return "checkpoint " + r.Branch + "@" + r.Name
	case RootTag:
		return "tag " + r.Name
	case RootMerge:
		return "pending merge of " + r.Name + " into " + r.Branch
	default:
		return fmt.Sprintf("checkpoint %s (%s)", r.Commit, r.Name)
	}
}

// Roots lists the roots in r (a Pebble snapshot or the DB) and the current pins: branch
// bases, overlays (also those left without a branch), named checkpoints, pins.
func (e *Engine) Roots(r pebble.Reader) ([]Root, error) {
	var out []Root
	byOverlay := map[uint64]string{}
	if err := scanPrefix(r, []byte{pfxRef}, func(k, v []byte) error {
		b, err := decodeBranch(string(k[1:]), v)
		if err != nil {
			return err
		}
		byOverlay[b.ID] = b.Name
		out = append(out, Root{Kind: RootBranch, Branch: b.Name, Commit: b.Base})
		return nil
	}); err != nil {
		return nil, err
	}
	if err := scanPrefix(r, []byte{pfxName}, func(k, v []byte) error {
		br, name, ok := cutZero(k[1:])
		if !ok || len(v) != len(store.ID{}) {
			return fmt.Errorf("malformed checkpoint name key %q", k)
		}
		out = append(out, Root{Kind: RootCheckpoint, Branch: br, Name: name, Commit: store.ID(v)})
		return nil
	}); err != nil {
		return nil, err
	}
	out, err := e.reviewRoots(r, out) // tags, pending merges (tags.go)
	if err != nil {
		return nil, err
	}
	// Overlays: one root per overlay id present, found by skipping from one id to the next.
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: []byte{pfxOverlay}, UpperBound: []byte{pfxOverlay + 1}})
	if err != nil {
		return nil, err
	}
	for it.First(); it.Valid(); {
		k := it.Key()
		if len(k) < 9 {
			it.Next()
			continue
		}
		id := binary.BigEndian.Uint64(k[1:9])
		out = append(out, Root{Kind: RootOverlay, Branch: byOverlay[id], Overlay: id})
		if next := prefixEnd(k[:9]); next != nil {
			it.SeekGE(next)
		} else {
			break
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, err
	}
	e.gc.mu.Lock()
	for id := range e.gc.pins {
		out = append(out, Root{Kind: RootPin, Commit: id, Name: e.gc.pinned[id]})
	}
	e.gc.mu.Unlock()
	// Branches in name order (base, overlay, named checkpoints), then roots without a branch.
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].Branch, out[j].Branch
		if (a == "") != (b == "") {
			return b == ""
		}
		return a < b
	})
	return out, nil
}

func cutZero(b []byte) (string, string, bool) {
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), string(b[i+1:]), true
		}
	}
	return "", "", false
}

func scanPrefix(r pebble.Reader, p []byte, fn func(k, v []byte) error) error {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		if err := fn(it.Key(), it.Value()); err != nil {
			it.Close()
			return err
		}
	}
	return errors.Join(it.Error(), it.Close())
}

// CommitIndex returns the commit ids in the 'C' index of r (not roots: the index serves
// id-prefix lookups; gc drops the entries of commits it deletes).
func (e *Engine) CommitIndex(r pebble.Reader) ([]store.ID, error) {
	var out []store.ID
	err := scanPrefix(r, []byte{pfxCommit}, func(k, v []byte) error {
		if len(k) == 1+len(store.ID{}) {
			out = append(out, store.ID(k[1:]))
		}
		return nil
	})
	return out, err
}

// ForgetCommits drops the index and prune entries of the given commits that are no longer
// in the store (gc deleted them); commits still present are left alone.
func (e *Engine) ForgetCommits(ctx context.Context, ids []store.ID) (int, error) {
	b := e.db.NewBatch()
	defer b.Close()
	n := 0
	for _, id := range ids {
		ok, err := e.st.Has(ctx, id)
		if err != nil {
			return 0, err
		}
		if ok {
			continue
		}
		if err := b.Delete(commitKey(id), nil); err != nil {
			return 0, err
		}
		if err := b.Delete(prunedKey(id), nil); err != nil {
			return 0, err
		}
		n++
	}
	return n, b.Commit(pebble.NoSync)
}

// ObjectKind is the kind of a stored object.
type ObjectKind string

const (
	ObjCommit ObjectKind = "checkpoint"
	ObjTree   ObjectKind = "tree node"
	ObjData   ObjectKind = "data block"
)

// Object is a block reached by a Walker.
type Object struct {
	ID       store.ID
	Kind     ObjectKind
	Root     *Root    // the root the walk started from
	Commit   store.ID // the commit whose tree holds it (zero for overlay data)
	TreeRoot store.ID // that commit's tree root
	Key      []byte   // data: its tree key; tree node: its first key (nil for a root node)
}

// Walker visits the blocks reachable from roots: commits (and, through Parents, their
// history), tree nodes, data blocks. Commits that are pruned and reached only through
// Parents are visited without their trees.
type Walker struct {
	e      *Engine
	Tree   *tree.Tree    // nodes are read through it (a fresh Tree reads every node from disk)
	Reader pebble.Reader // where overlays and prune marks are read (a snapshot for gc)
	// Enter is called before an object is read; false skips it and everything below it.
	Enter func(o *Object) bool
	// Verify reads data blocks too (checking their hash); otherwise they are only entered.
	Verify bool
	// Broken gets an object that could not be read; a nil return continues the walk.
	Broken func(o *Object, err error) error

	root    *Root
	commits map[store.ID]walkedCommit
	buf     []byte
}

type walkedCommit struct {
	root          store.ID
	tree, skipped bool
}

// NewWalker returns a walker reading overlays from r and nodes through t (nil: the
// engine's cached tree).
func (e *Engine) NewWalker(r pebble.Reader, t *tree.Tree) *Walker {
	if t == nil {
		t = e.tree
	}
	return &Walker{e: e, Tree: t, Reader: r, commits: map[store.ID]walkedCommit{},
		Enter:  func(*Object) bool { return true },
		Broken: func(o *Object, err error) error { return fmt.Errorf("%s %s: %w", o.Kind, o.ID, err) },
	}
}

// Walk visits everything reachable from root. Within one Walker each commit is read once.
func (w *Walker) Walk(ctx context.Context, root Root) error {
	w.root = &root
	if w.commits == nil {
		w.commits = map[store.ID]walkedCommit{}
	}
	if root.Kind == RootOverlay {
		return w.overlay(ctx, root.Overlay)
	}
	return w.history(ctx, root.Commit)
}

func (w *Walker) history(ctx context.Context, start store.ID) error {
	type item struct {
		id   store.ID
		tree bool
	}
	stack := []item{{start, true}}
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if wc, ok := w.commits[it.id]; ok {
			if it.tree && !wc.tree && !wc.skipped && !wc.root.IsZero() {
				wc.tree = true
				w.commits[it.id] = wc
				if err := w.tree(ctx, wc.root, it.id); err != nil {
					return err
				}
			}
			continue
		}
		o := &Object{ID: it.id, Kind: ObjCommit, Root: w.root, Commit: it.id}
		if !w.Enter(o) {
			w.commits[it.id] = walkedCommit{skipped: true}
			continue
		}
		data, err := w.e.st.Get(ctx, it.id, w.buf[:0])
		var c *Commit
		if err == nil {
			w.buf = data
			c, err = decodeCommit(data)
		}
		if err != nil {
			w.commits[it.id] = walkedCommit{skipped: true}
			if err := w.Broken(o, err); err != nil {
				return err
			}
			continue
		}
		w.commits[it.id] = walkedCommit{root: c.Root, tree: it.tree}
		if it.tree {
			if err := w.tree(ctx, c.Root, it.id); err != nil {
				return err
			}
		}
		for _, p := range c.Parents {
			pruned, err := w.pruned(p)
			if err != nil {
				return err
			}
			stack = append(stack, item{p, !pruned})
		}
	}
	return nil
}

func (w *Walker) pruned(id store.ID) (bool, error) {
	_, c, err := w.Reader.Get(prunedKey(id))
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, c.Close()
}

func (w *Walker) tree(ctx context.Context, root, commit store.ID) error {
	if root.IsZero() {
		return nil
	}
	return w.node(ctx, &Object{ID: root, Kind: ObjTree, Root: w.root, Commit: commit, TreeRoot: root})
}

func (w *Walker) node(ctx context.Context, o *Object) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !w.Enter(o) {
		return nil
	}
	var kids []*Object
	err := w.Tree.ReadNode(ctx, o.ID, func(level int, k, v []byte) bool {
		if level > 0 {
			kids = append(kids, &Object{ID: store.ID(v), Kind: ObjTree, Root: w.root, Commit: o.Commit, TreeRoot: o.TreeRoot, Key: k})
		} else if id, ok := blockRef(k, v); ok {
			kids = append(kids, &Object{ID: id, Kind: ObjData, Root: w.root, Commit: o.Commit, TreeRoot: o.TreeRoot, Key: k})
		}
		return true
	})
	if err != nil {
		return w.Broken(o, err)
	}
	for _, kid := range kids {
		if kid.Kind == ObjTree {
			err = w.node(ctx, kid)
		} else {
			err = w.data(ctx, kid)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// blockRef returns the block ID a tree entry references, if any.
func blockRef(k, v []byte) (store.ID, bool) {
	if len(k) != 17 || k[0] != kindBlock || len(v) != len(store.ID{}) {
		return store.ID{}, false
	}
	return store.ID(v), true
}

func (w *Walker) data(ctx context.Context, o *Object) error {
	if !w.Enter(o) || !w.Verify {
		return nil
	}
	data, err := w.e.st.Get(ctx, o.ID, w.buf[:0])
	if err != nil {
		return w.Broken(o, err)
	}
	w.buf = data
	return nil
}

func (w *Walker) overlay(ctx context.Context, id uint64) error {
	p := overlayPrefix(id)
	var objs []*Object
	if err := scanPrefix(w.Reader, p, func(k, v []byte) error {
		if len(v) > 0 && v[0] == 1 {
			if bid, ok := blockRef(k[len(p):], v[1:]); ok {
				objs = append(objs, &Object{ID: bid, Kind: ObjData, Root: w.root, Key: append([]byte(nil), k[len(p):]...)})
			}
		}
		return nil
	}); err != nil {
		return err
	}
	for _, o := range objs {
		if err := w.data(ctx, o); err != nil {
			return err
		}
	}
	return nil
}

// Where describes in words which path an object belongs to, for fsck reports: the file of
// a data block, or the first path a tree node holds. It never fails; what it cannot resolve
// it names by inode number.
func (e *Engine) Where(ctx context.Context, o *Object) string {
	var get func(ctx context.Context, k []byte) ([]byte, bool, error)
	switch {
	case o.Kind == ObjCommit:
		return "(history)"
	case !o.TreeRoot.IsZero():
		get = newView(e, o.TreeRoot).GetLocked
	case o.Root != nil && o.Root.Branch != "":
		ws, err := e.Workspace(ctx, o.Root.Branch)
		if err != nil {
			return "(unknown path)"
		}
		get = ws.GetLocked
	default:
		return "(unknown path)"
	}
	if o.Kind == ObjTree && o.Key == nil {
		return "/ (the whole tree)"
	}
	ino := keyIno(o.Key)
	p := pathByParents(ctx, get, ino)
	switch {
	case o.Kind == ObjData:
		return fmt.Sprintf("%s (bytes from %d)", p, binary.BigEndian.Uint64(o.Key[9:17])*BlockSize)
	case o.Kind == ObjTree:
		return p + " and the entries after it"
	}
	return p
}

// pathByParents follows an inode's parent links up to the root.
func pathByParents(ctx context.Context, get func(ctx context.Context, k []byte) ([]byte, bool, error), ino uint64) string {
	var parts []string
	cur := ino
	for depth := 0; cur != RootIno; depth++ {
		v, ok, err := get(ctx, inodeKey(cur))
		if err != nil || !ok || depth > 4096 {
			return fmt.Sprintf("inode %d", ino)
		}
		n, err := decodeInode(v)
		if err != nil {
			return fmt.Sprintf("inode %d", ino)
		}
		parts = append(parts, n.Name)
		cur = n.Parent
	}
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return "/" + path.Join(parts...)
}

// PruneCheckpoints marks as pruned the unnamed checkpoints taken on branch that are older
// than the keepLast newest checkpoints of the branch and older than keepWithin. A pruned
// checkpoint stays in the log, but gc frees its files (those no other version holds), and it
// can no longer be forked from, rolled back to or mounted. The branch's base and every
// checkpoint another branch starts from or names are never pruned. It returns the ids it
// pruned.
func (e *Engine) PruneCheckpoints(ctx context.Context, branch string, keepLast int, keepWithin time.Duration) ([]store.ID, error) {
	if keepLast < 0 || keepWithin < 0 {
		return nil, fmt.Errorf("%w: --keep-last and --keep-within must not be negative", ErrInvalidName)
	}
	defer e.op()()
	keep, err := e.rootCommits()
	if err != nil {
		return nil, err
	}
	return e.prune(ctx, branch, keepLast, keepWithin, keep)
}

// rootCommits returns the commits gc treats as roots (bases, names, tags...): never pruned.
func (e *Engine) rootCommits() (map[store.ID]bool, error) {
	roots, err := e.Roots(e.db)
	if err != nil {
		return nil, err
	}
	keep := map[store.ID]bool{}
	for _, r := range roots {
		keep[r.Commit] = true
	}
	return keep, nil
}

// prune is PruneCheckpoints with the roots computed; callers hold op.
func (e *Engine) prune(ctx context.Context, branch string, keepLast int, keepWithin time.Duration, keep map[store.ID]bool) ([]store.ID, error) {
	log, err := e.Log(ctx, branch)
	if err != nil {
		return nil, err
	}
	b := e.db.NewBatch()
	defer b.Close()
	var out []store.ID
	for _, id := range toPrune(log, branch, keepLast, keepWithin, e.now(), keep) { // retention.go
		if ok, err := e.IsPruned(id); err != nil {
			return nil, err
		} else if ok {
			continue
		}
		if err := b.Set(prunedKey(id), nil, nil); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, e.st.CommitDurable(b)
}
