package branch

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/agentfs/agentfs/branch/tree"
	"github.com/agentfs/agentfs/store"
)

// Fold once. A fork (or a tag, or a rollback to another branch) of a branch with
// uncommitted changes needs a commit of its working state, and a diff needs a tree of it.
// Folding costs the changes (every block with pages is read, patched and hashed), so the
// result is kept per workspace and reused until the working state changes
// (Workspace.VersionLocked):
//
//   - a fork writes the fold as a commit (it becomes the new branch's base); later forks
//     reuse that commit;
//   - a diff folds into memory (tree.Scratch) and writes nothing to the repository; a later
//     diff reuses that tree, or the fork's commit when there is one.
type foldCaches struct {
	mu    sync.Mutex
	byWS  map[*Workspace]*foldCache
	epoch atomic.Uint64 // garbage collections begun (BeginGC)
}

// foldCache is the fold of one workspace at one version.
type foldCache struct {
	overlay, ver uint64
	root         store.ID      // the fold's tree root
	commit       store.ID      // a stored commit of the state, or zero
	epoch        uint64        // foldCaches.epoch when commit was written
	scratch      *tree.Scratch // the fold's tree nodes, when it was made in memory
}

// cachedFold returns ws's fold if it is still the fold of ws's state. A stored commit is
// reused only if no garbage collection began since it was written: a collection may have
// swept it if no branch references it. Callers hold ws's lock.
func (e *Engine) cachedFold(ws *Workspace) *foldCache {
	e.folds.mu.Lock()
	defer e.folds.mu.Unlock()
	c := e.folds.byWS[ws]
	if c == nil || c.overlay != ws.OverlayID() || c.ver != ws.VersionLocked() ||
		!c.commit.IsZero() && c.epoch != e.folds.epoch.Load() {
		return nil
	}
	return c
}

// foldIsCurrent reports whether commit id is the kept fold of ws's present state: nothing
// changed it since it was folded. Callers hold ws's lock.
func (e *Engine) foldIsCurrent(ws *Workspace, id store.ID) bool {
	e.folds.mu.Lock()
	defer e.folds.mu.Unlock()
	c := e.folds.byWS[ws]
	return c != nil && c.commit == id && c.overlay == ws.OverlayID() && c.ver == ws.VersionLocked()
}

// keepFoldAt records c as the fold of ws at overlay and version ver (read under its lock
// when the fold's snapshot was taken).
func (e *Engine) keepFoldAt(ws *Workspace, overlay, ver uint64, c *foldCache) {
	c.overlay, c.ver = overlay, ver
	e.folds.mu.Lock()
	defer e.folds.mu.Unlock()
	if e.folds.byWS == nil {
		e.folds.byWS = map[*Workspace]*foldCache{}
	}
	e.folds.byWS[ws] = c
}

// dropStaleFolds forgets the kept folds that no longer are their workspace's state (it
// changed since), and the in-memory folds (tree.Scratch: the tree nodes of every changed
// key) of workspaces unused since before (unix seconds); a stored commit's fold costs no
// memory and stays. EvictIdle calls it, so that a mounted branch that changes keeps no
// fold it will never use, and one left alone gives its in-memory fold back.
func (e *Engine) dropStaleFolds(before int64) int {
	e.folds.mu.Lock()
	defer e.folds.mu.Unlock()
	n := 0
	for ws, c := range e.folds.byWS {
		if c.ver != ws.VersionLocked() || c.scratch != nil && ws.IdleSince(before) { // ver is atomic
			delete(e.folds.byWS, ws)
			n++
		}
	}
	return n
}

// keptFolds returns how many folds are kept (tests).
func (e *Engine) keptFolds() int {
	e.folds.mu.Lock()
	defer e.folds.mu.Unlock()
	return len(e.folds.byWS)
}

// dropFold forgets the fold of a workspace that was dropped or moved to a new base.
func (e *Engine) dropFold(ws *Workspace) {
	e.folds.mu.Lock()
	defer e.folds.mu.Unlock()
	delete(e.folds.byWS, ws)
}

// readSide is one side of a read-only comparison: the tree root to diff and a view to read
// files through.
type readSide struct {
	root    store.ID
	view    *Workspace
	release func()
}

// readSide returns ref r's side of a comparison. For a branch with uncommitted changes the
// root is a fold kept in sc (or a stored fold from a fork) and the view a frozen copy of the
// working state: nothing is written to the repository. Call release when done.
func (e *Engine) readSide(ctx context.Context, r Ref, sc *tree.Scratch) (readSide, error) {
	nothing := func() {}
	if r.Branch == "" {
		c, err := e.ReadCommit(ctx, r.Commit)
		if err != nil {
			return readSide{}, err
		}
		return readSide{c.Root, newView(e, c.Root), nothing}, nil
	}
	ws, err := e.Workspace(ctx, r.Branch)
	if err != nil {
		return readSide{}, err
	}
	ws.Lock()
	snap := e.db.NewSnapshot()
	frozen := ws.FreezeLocked(snap)
	overlay, ver := ws.OverlayID(), ws.VersionLocked()
	c := e.cachedFold(ws)
	ws.Unlock()
	if c == nil {
		// Fold the frozen copy with the lock released: writers go on meanwhile.
		own := tree.NewScratch(e.st)
		root, n, err := frozen.FoldScratchLocked(ctx, tree.New(own, 1024))
		if err != nil {
			snap.Close()
			return readSide{}, err
		}
		if n == 0 { // no changes: the base's tree
			snap.Close()
			return readSide{root, newView(e, root), nothing}, nil
		}
		c = &foldCache{root: root, scratch: own}
		e.keepFoldAt(ws, overlay, ver, c)
	}
	if !c.commit.IsZero() {
		snap.Close()
		return readSide{c.root, newView(e, c.root), nothing}, nil
	}
	sc.Add(c.scratch)
	return readSide{c.root, frozen, func() { snap.Close() }}, nil
}

// readSides resolves refs into sides of a comparison and the tree to diff them in.
func (e *Engine) readSides(ctx context.Context, refs ...string) ([]readSide, *tree.Tree, func(), error) {
	sc := tree.NewScratch(e.st)
	var sides []readSide
	release := func() {
		for _, s := range sides {
			s.release()
		}
	}
	for _, ref := range refs {
		r, err := e.Resolve(ctx, ref)
		if err != nil {
			release()
			return nil, nil, nil, err
		}
		s, err := e.readSide(ctx, r, sc)
		if err != nil {
			release()
			return nil, nil, nil, err
		}
		sides = append(sides, s)
	}
	t := e.tree // commits only: the engine's tree and its warm node cache
	if sc.Len() > 0 {
		t = tree.New(sc, 4096)
	}
	return sides, t, release, nil
}
