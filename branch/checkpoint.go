package branch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"syscall"

	"github.com/cockroachdb/pebble/v2"

	"github.com/agentfs/agentfs/branch/tree"
	"github.com/agentfs/agentfs/store"
	"github.com/agentfs/agentfs/work"
)

// The version model's operations on a workspace (package work): they fold its working state
// into commits (outside its lock where they can, frozenFold) and move its base, holding its
// lock.

// frozenFold is a fold of a frozen copy of a workspace's working state (FreezeLocked over a
// Pebble snapshot taken under its lock), made with the lock released: writers are not held
// up while blocks are hashed, compressed and stored. The fold holds exactly the writes that
// completed before the snapshot; a journal records the keys written since, which the
// operation that moves the branch's base carries into the next overlay (work.CarryLocked) in
// the same synced batch. Checkpoint, merge and revert fold this way.
type frozenFold struct {
	e             *Engine
	ws            *Workspace
	snap          *pebble.Snapshot
	frozen        *Workspace
	overlay, ver  uint64
	oldRoot, base store.ID // the base tree and commit the working state started from
	journal       *work.Journal
	root          store.ID        // the fold's tree
	n             int             // keys the fold changed
	blocks        []tree.Mutation // block entries made of working pages
	carried       map[string]bool // block keys carrying hid (set by carryLocked's function)
	dirs          []*Inode        // directory inodes rebased onto a merge (clashesLocked)
}

// foldOutside folds ws's working state as frozenFold says. Callers hold no lock of ws and
// close the result.
func (e *Engine) foldOutside(ctx context.Context, ws *Workspace) (*frozenFold, error) {
	ws.Lock()
	f := e.freezeLocked(ws)
	ws.Unlock()
	if err := f.fold(ctx); err != nil {
		f.close()
		return nil, err
	}
	return f, nil
}

// freezeLocked takes the snapshot and starts the journal; the caller releases the lock, then
// calls fold, and closes f. Callers hold ws's lock.
func (e *Engine) freezeLocked(ws *Workspace) *frozenFold {
	f := &frozenFold{e: e, ws: ws, snap: e.db.NewSnapshot(), overlay: ws.OverlayID(), ver: ws.VersionLocked()}
	f.frozen = ws.FreezeLocked(f.snap)
	f.oldRoot, f.base = ws.HeadLocked()
	f.journal = ws.StartJournalLocked()
	return f
}

// fold folds the frozen copy. Callers hold no lock of the workspace.
func (f *frozenFold) fold(ctx context.Context) error {
	var err error
	f.root, f.n, f.blocks, err = f.frozen.FoldBlocksLocked(ctx)
	return err
}

func (f *frozenFold) close() {
	f.ws.EndJournal(f.journal)
	f.snap.Close()
}

// currentLocked reports whether the workspace still starts from the overlay and base the
// fold froze: only writes happened since, which carrying moves onto a new base. Otherwise
// (another checkpoint, a rollback or a merge moved the branch meanwhile) the caller folds
// again under the lock. Callers hold the lock.
func (f *frozenFold) currentLocked() bool {
	return f.ws.OverlayID() == f.overlay && f.ws.BaseLocked() == f.base
}

// carryLocked returns the function that carries the writes made since the snapshot into the
// new overlay (for moveBaseCarry), or nil when there were none. Callers hold the lock.
func (f *frozenFold) carryLocked(ctx context.Context) func(b *pebble.Batch, newID uint64) error {
	if f.ws.VersionLocked() == f.ver {
		return nil
	}
	return func(b *pebble.Batch, newID uint64) (err error) {
		f.carried, err = f.ws.CarryLocked(ctx, b, f.snap, newID, f.journal)
		return err
	}
}

// carryOntoLocked is carryLocked for a new base that is a merge or revert built on the fold
// (clashesLocked found nothing that clashes): it also writes the directories rebased onto it.
func (f *frozenFold) carryOntoLocked(ctx context.Context) func(b *pebble.Batch, newID uint64) error {
	carry := f.carryLocked(ctx)
	if carry == nil {
		return nil
	}
	return func(b *pebble.Batch, newID uint64) error {
		if err := carry(b, newID); err != nil {
			return err
		}
		for _, n := range f.dirs {
			if err := b.Set(append(overlayPrefix(newID), inodeKey(n.Ino)...), append([]byte{1}, encodeInode(n)...), nil); err != nil {
				return err
			}
		}
		return nil
	}
}

// rebased returns the value of a directory's inode key rebased onto a merge
// (clashesLocked), if it is one.
func (f *frozenFold) rebased(k []byte) ([]byte, bool) {
	for _, n := range f.dirs {
		if bytes.Equal(k, inodeKey(n.Ino)) {
			return encodeInode(n), true
		}
	}
	return nil, false
}

// clashesLocked reports whether the writes made since the snapshot cannot be carried onto
// root (a merge or revert built on the fold): one touched a key that differs between the
// fold's tree and root. The exception is a directory's inode, which both sides change
// whenever they add or remove an entry in it: its attributes combine as a merge combines
// them (rebaseDir), and the carry writes the result. If nothing clashes, carrying the writes
// onto root gives what making them after the merge would have; if something does, the
// caller folds again under the lock. Callers hold the lock.
func (f *frozenFold) clashesLocked(ctx context.Context, root store.ID) (bool, error) {
	f.dirs = nil
	if f.ws.VersionLocked() == f.ver || root == f.root {
		return false, nil
	}
	clash := false
	err := f.e.tree.Diff(ctx, f.root, root, func(k, va, vb []byte) error {
		if !f.ws.TouchesLocked(f.journal, k) {
			return nil
		}
		if k[0] == kindInode && va != nil && vb != nil {
			cur, err := f.ws.InodeLocked(ctx, keyIno(k))
			if err != nil && !errors.Is(err, syscall.ENOENT) {
				return err
			}
			o, err1 := decodeInode(va)
			b, err2 := decodeInode(vb)
			if cur != nil && err1 == nil && err2 == nil {
				if n, ok := rebaseDir(o, cur, b); ok {
					f.dirs = append(f.dirs, n)
					return nil
				}
			}
		}
		clash = true
		return tree.Stop
	})
	return clash, err
}

// rebaseDir returns directory inode a, changed from o since a fold, moved onto b (o as a
// merge or revert left it): times and link counts combine as merge combines a directory's
// attributes; mode, owner and place come from the side that changed them. It reports false
// if both sides changed one of those differently.
func rebaseDir(o, a, b *Inode) (*Inode, bool) {
	if !o.IsDir() || !a.IsDir() || !b.IsDir() {
		return nil, false
	}
	n := *b
	ok := true
	pick := func(dst *uint32, o, a, b uint32) {
		switch {
		case a == o || a == b:
		case b == o:
			*dst = a
		default:
			ok = false
		}
	}
	pick(&n.Mode, o.Mode, a.Mode, b.Mode)
	pick(&n.Uid, o.Uid, a.Uid, b.Uid)
	pick(&n.Gid, o.Gid, a.Gid, b.Gid)
	switch {
	case a.Parent == o.Parent && a.Name == o.Name:
	case b.Parent == o.Parent && b.Name == o.Name:
		n.Parent, n.Name = a.Parent, a.Name
	default:
		ok = false
	}
	n.Nlink = a.Nlink + b.Nlink - o.Nlink
	n.Atime, n.Mtime, n.Ctime = max(a.Atime, b.Atime), max(a.Mtime, b.Mtime), max(a.Ctime, b.Ctime)
	return &n, ok && n.Size == o.Size && a.Size == o.Size
}

// keptBlocks returns the fold's block entries that carried entries do not hide, for the key
// cache of a workspace whose base became the fold.
func (f *frozenFold) keptBlocks() []tree.Mutation {
	if len(f.carried) == 0 {
		return f.blocks
	}
	kept := f.blocks[:0:0]
	for _, m := range f.blocks {
		if !f.carried[string(m.Key)] {
			kept = append(kept, m)
		}
	}
	return kept
}

// checkpointWith folds the working state into a commit carrying o's provenance and the
// summary of the paths changed since the base (their list is returned too; the diff walks
// only what changed). It folds outside the workspace's lock (frozenFold): the checkpoint
// holds exactly the writes that completed before its snapshot, and what was written while it
// folded is carried into the branch's next overlay in the same synced batch that writes the
// commit.
func (e *Engine) checkpointWith(ctx context.Context, ws *Workspace, o CheckpointOptions) (store.ID, []Change, error) {
	f, err := e.foldOutside(ctx, ws)
	if err != nil {
		return store.ID{}, nil, err
	}
	defer f.close()
	if o.ifChanged && f.root == f.oldRoot {
		return f.base, nil, errUnchanged
	}
	changes, err := e.DiffRoots(ctx, f.oldRoot, f.root)
	if err != nil {
		return store.ID{}, nil, err
	}
	if afterCheckpointFold != nil {
		afterCheckpointFold()
	}

	ws.Lock()
	defer ws.Unlock()
	if !f.currentLocked() {
		return e.checkpointLocked(ctx, ws, o)
	}
	b := e.db.NewBatch()
	defer b.Close()
	id, err := e.stageCheckpoint(ctx, b, ws.Branch(), f.root, f.base, changes, o)
	if err != nil {
		return store.ID{}, nil, err
	}
	if err := e.moveBaseCarry(ws, b, id, f.carryLocked(ctx)); err != nil {
		return store.ID{}, nil, err
	}
	ws.SetBaseLocked(f.root, id)
	ws.CacheLocked(f.keptBlocks())
	return id, changes, nil
}

// afterCheckpointFold, when set (tests), runs between a checkpoint's fold and its commit,
// with no lock held.
var afterCheckpointFold func()

// checkpointLocked is checkpointWith folding under the workspace's lock, which callers hold.
func (e *Engine) checkpointLocked(ctx context.Context, ws *Workspace, o CheckpointOptions) (store.ID, []Change, error) {
	root, _, blocks, err := ws.FoldBlocksLocked(ctx)
	if err != nil {
		return store.ID{}, nil, err
	}
	oldRoot, base := ws.HeadLocked()
	if o.ifChanged && root == oldRoot {
		return base, nil, errUnchanged
	}
	changes, err := e.DiffRoots(ctx, oldRoot, root)
	if err != nil {
		return store.ID{}, nil, err
	}
	b := e.db.NewBatch()
	defer b.Close()
	id, err := e.stageCheckpoint(ctx, b, ws.Branch(), root, base, changes, o)
	if err != nil {
		return store.ID{}, nil, err
	}
	if err := e.moveBase(ws, b, id); err != nil {
		return store.ID{}, nil, err
	}
	ws.SetBaseLocked(root, id)
	ws.CacheLocked(blocks)
	return id, changes, nil
}

// stageCheckpoint adds to b the commit of root on top of base and, for a named checkpoint,
// its name.
func (e *Engine) stageCheckpoint(ctx context.Context, b *pebble.Batch, branch string, root, base store.ID, changes []Change, o CheckpointOptions) (store.ID, error) {
	c := &Commit{Root: root, Parents: []store.ID{base}, Time: e.now().UTC(), Branch: branch, Name: o.Name, Message: o.Message,
		Provenance: o.Provenance, Files: CountChanges(changes)}
	id, err := e.writeCommit(ctx, b, c)
	if err != nil {
		return store.ID{}, err
	}
	if o.Name != "" {
		if err := b.Set(nameKey(branch, o.Name), id[:], nil); err != nil {
			return store.ID{}, err
		}
	}
	return id, nil
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

// moveBase commits b (synced) together with dropping ws's overlay and pointing its branch at
// commit id. Callers hold ws's lock.
func (e *Engine) moveBase(ws *Workspace, b *pebble.Batch, id store.ID) error {
	return e.moveBaseCarry(ws, b, id, nil)
}

// moveBaseCarry is moveBase that lets carry add entries of the new overlay to b first.
func (e *Engine) moveBaseCarry(ws *Workspace, b *pebble.Batch, id store.ID, carry func(b *pebble.Batch, newID uint64) error) error {
	defer e.lockBranch(ws.Branch())() // not Engine.mu: other branches commit meanwhile (locks.go)
	if ws.Evicted() {                 // a caller held it past EvictIdle; the engine has a newer one
		return fmt.Errorf("%w: branch %s was idle and closed while this operation held it; retry", syscall.ESTALE, ws.Branch())
	}
	br, err := e.GetBranch(ws.Branch())
	if err != nil {
		return err
	}
	if br.ID != ws.OverlayID() {
		return fmt.Errorf("branch %q was deleted and re-created: %w", ws.Branch(), ErrNotFound)
	}
	// The working state restarts in a fresh overlay. Reusing the old key range would make
	// every later scan of it step over the range-deleted keys until Pebble compacts them:
	// after a 100k-file import, a one-file checkpoint would take tens of milliseconds.
	newID, err := e.newBranchID()
	if err != nil {
		return err
	}
	br.Base, br.ID = id, newID
	prefix := overlayPrefix(ws.OverlayID())
	if err := b.DeleteRange(prefix, prefixEnd(prefix), nil); err != nil {
		return err
	}
	if err := b.Set(refKey(ws.Branch()), encodeBranch(br), nil); err != nil {
		return err
	}
	if carry != nil {
		if err := carry(b, newID); err != nil {
			return err
		}
	}
	beforeRefCommit(ws.Branch())
	if err := e.st.CommitDurable(b); err != nil {
		return err
	}
	ws.SetOverlayLocked(newID)
	e.dropFold(ws) // the fold of the old overlay is no use now
	return nil
}

// snapshotCommit returns a commit of ws's current state without changing the branch: its
// base when nothing changed, else a commit folding the overlay in. The commit is kept and
// returned again until the state changes (fold once, foldonce.go).
func (e *Engine) snapshotCommit(ctx context.Context, ws *Workspace, msg string) (store.ID, error) {
	ws.Lock()
	if c := e.cachedFold(ws); c != nil && !c.commit.IsZero() {
		ws.Unlock()
		return c.commit, e.retainCommit(ctx, c.commit)
	}
	// Fold a frozen copy with the lock released, like a checkpoint: writers go on meanwhile
	// (the commit holds the writes that completed before the snapshot).
	snap := e.db.NewSnapshot()
	defer snap.Close()
	frozen := ws.FreezeLocked(snap)
	overlay, ver := ws.OverlayID(), ws.VersionLocked()
	_, base := ws.HeadLocked()
	ws.Unlock()
	root, n, err := frozen.FoldLocked(ctx)
	if err != nil {
		return store.ID{}, err
	}
	if n == 0 {
		return base, e.st.Retain(ctx, base)
	}
	b := e.db.NewBatch()
	defer b.Close()
	id, err := e.writeCommit(ctx, b, &Commit{Root: root, Parents: []store.ID{base}, Time: e.now().UTC(), Branch: ws.Branch(), Message: msg})
	if err != nil {
		return store.ID{}, err
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return store.ID{}, err
	}
	e.keepFoldAt(ws, overlay, ver, &foldCache{root: root, commit: id, epoch: e.folds.epoch.Load()})
	return id, nil
}

// currentRoot returns the root of a tree holding ws's current state: for a branch with
// changes, the root of its stored fold (snapshotCommit, made once until the state changes).
func (e *Engine) currentRoot(ctx context.Context, ws *Workspace) (store.ID, error) {
	if ws.ReadOnly() {
		root, _ := ws.HeadLocked() // a view never changes
		return root, nil
	}
	id, err := e.snapshotCommit(ctx, ws, "uncommitted changes of "+ws.Branch())
	if err != nil {
		return store.ID{}, err
	}
	c, err := e.ReadCommit(ctx, id)
	if err != nil {
		return store.ID{}, err
	}
	return c.Root, nil
}

// reset drops ws's working state and points its branch at commit target.
// It returns the reset hooks for the caller to run once it holds no locks.
func (e *Engine) reset(ctx context.Context, ws *Workspace, target store.ID) ([]func(), error) {
	c, err := e.ReadCommit(ctx, target)
	if err != nil {
		return nil, err
	}
	ws.Lock()
	defer ws.Unlock()
	b := e.db.NewBatch()
	defer b.Close()
	if err := e.moveBase(ws, b, target); err != nil {
		return nil, err
	}
	ws.ReplaceContentLocked(c.Root, target)
	ws.NewGenerationLocked()
	return ws.HooksLocked(), nil
}
