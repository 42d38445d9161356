package branch

import (
	"context"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/agentfs/agentfs/branch/tree"
	"github.com/agentfs/agentfs/store"
)

// RevertOptions configure a revert.
type RevertOptions struct {
	Message string
	DryRun  bool
}

// Revert undoes the changes checkpoint made relative to its (first) parent, on top of
// branch's current state: a three-way merge whose base is the checkpoint, whose "ours" is the
// branch and whose "theirs" is the checkpoint's parent, so that only what the checkpoint
// changed moves back and later work on the same files merges line by line. Conflicts are
// reported per path as Merge reports them, and then the branch is left unchanged. The result
// is a new checkpoint with the branch's previous state as its only parent.
func (e *Engine) Revert(ctx context.Context, checkpoint, branch string, o RevertOptions) (*MergeResult, error) {
	dws, err := e.Workspace(ctx, branch)
	if err != nil {
		return nil, err
	}
	done := e.op()
	res, hooks, err := e.revert(ctx, checkpoint, dws, o)
	done()
	for _, h := range hooks {
		h()
	}
	return res, err
}

func (e *Engine) revert(ctx context.Context, checkpoint string, dws *Workspace, o RevertOptions) (*MergeResult, []func(), error) {
	r, err := e.Resolve(ctx, checkpoint)
	if err != nil {
		return nil, nil, err
	}
	id := r.Commit
	if err := e.retainCommit(ctx, id); err != nil {
		return nil, nil, err
	}
	c, err := e.ReadCommit(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	if len(c.Parents) == 0 {
		return nil, nil, fmt.Errorf("%w: checkpoint %s has no parent (it created branch %s); roll back or delete the branch instead", ErrInvalidName, id, c.Branch)
	}
	p, err := e.ReadCommit(ctx, c.Parents[0])
	if err != nil {
		return nil, nil, fmt.Errorf("the parent of checkpoint %s: %w", id, err)
	}
	// Fold outside the branch's lock, as a merge does (see merge): writes made meanwhile are
	// carried on top of the result unless one touched what the revert changes.
	f, err := e.foldOutside(ctx, dws)
	if err != nil {
		return nil, nil, err
	}
	defer f.close()
	plan := func(oursRoot store.ID) (*MergeResult, store.ID, error) {
		m := e.newMerger(ctx, StrategyFail, c.Root, oursRoot, p.Root)
		if err := m.run(); err != nil {
			return nil, store.ID{}, err
		}
		res := &MergeResult{Base: id, Conflicts: m.conflicts}
		if len(m.conflicts) > 0 {
			return res, store.ID{}, fmt.Errorf("%w: %d conflicting paths; the branch was not changed (edit them on %s and revert again, or roll back)", ErrConflict, len(m.conflicts), dws.Branch())
		}
		newRoot, err := e.tree.Apply(ctx, oursRoot, m.sorted())
		if err != nil {
			return nil, store.ID{}, err
		}
		if res.Changes, err = e.DiffRoots(ctx, oursRoot, newRoot); err != nil {
			return nil, store.ID{}, err
		}
		res.UpToDate = len(res.Changes) == 0 // its changes are gone from the branch already
		return res, newRoot, nil
	}
	oursRoot, pending := f.root, f.n
	res, newRoot, err := plan(oursRoot)
	if err != nil || res.UpToDate || o.DryRun {
		return res, nil, err
	}
	if afterMergeFold != nil {
		afterMergeFold()
	}
	dws.Lock()
	defer dws.Unlock()
	clash, err := f.clashesLocked(ctx, newRoot)
	if err != nil {
		return nil, nil, err
	}
	if clash || !f.currentLocked() {
		if oursRoot, pending, err = dws.FoldLocked(ctx); err != nil {
			return nil, nil, err
		}
		if res, newRoot, err = plan(oursRoot); err != nil || res.UpToDate {
			return res, nil, err
		}
		f = nil
	}
	msg := o.Message
	if msg == "" {
		msg = fmt.Sprintf("revert %s", id.String()[:12])
		if c.Message != "" {
			msg += ": " + c.Message
		}
	}
	if res.Commit, err = e.commitResult(ctx, dws, f, oursRoot, pending, newRoot, nil, msg, "changes before: "+msg); err != nil {
		return nil, nil, err
	}
	return res, dws.HooksLocked(), nil
}

// newMerger prepares a three-way merge of the trees base, ours and theirs.
func (e *Engine) newMerger(ctx context.Context, strategy string, base, ours, theirs store.ID) *merger {
	return &merger{e: e, ctx: ctx, strategy: strategy,
		base: newView(e, base), ours: newView(e, ours), theirs: newView(e, theirs),
		muts: map[string]*tree.Mutation{}, oursWon: map[uint64]bool{}, marked: map[uint64]bool{},
		handled: map[uint64]bool{}, handledKey: map[string]bool{}}
}

// commitResult makes newRoot the branch's new checkpoint: the branch's uncommitted changes
// (pending > 0) are committed first, with message before, as the state the result starts
// from, then newRoot with that state and extra as parents. When that state is fold f, made
// outside the lock (nil: folded under it), the writes made since are carried onto newRoot.
// Callers hold dws.mu and op.
func (e *Engine) commitResult(ctx context.Context, dws *Workspace, f *frozenFold, oursRoot store.ID, pending int, newRoot store.ID, extra []store.ID, msg, before string) (store.ID, error) {
	b := e.db.NewBatch()
	defer b.Close()
	head := dws.BaseLocked()
	var err error
	if pending > 0 {
		head, err = e.writeCommit(ctx, b, &Commit{Root: oursRoot, Parents: []store.ID{dws.BaseLocked()}, Time: e.now().UTC(), Branch: dws.Branch(), Message: before})
		if err != nil {
			return store.ID{}, err
		}
	}
	id, err := e.writeCommit(ctx, b, &Commit{Root: newRoot, Parents: append([]store.ID{head}, extra...), Time: e.now().UTC(), Branch: dws.Branch(), Message: msg})
	if err != nil {
		return store.ID{}, err
	}
	var carry func(*pebble.Batch, uint64) error
	if f != nil {
		carry = f.carryOntoLocked(ctx)
	}
	if err := e.moveBaseCarry(dws, b, id, carry); err != nil {
		return store.ID{}, err
	}
	dws.ReplaceContentLocked(newRoot, id)
	return id, nil
}
