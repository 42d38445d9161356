package branch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/cockroachdb/pebble/v2"

	"github.com/agentfs/agentfs/branch/tree"
	"github.com/agentfs/agentfs/internal/diff3"
	"github.com/agentfs/agentfs/store"
)

// A merge with conflict markers (StrategyMarkers) that found conflicts does not make a
// checkpoint. It writes its result into the target's working state, on top of the target's
// last checkpoint (its uncommitted changes are checkpointed first), and records a pending
// merge under 'U' + branch name:
//
//   - conflicting text regions hold git-style markers;
//   - for other conflicting files the target keeps its version and the source's version is
//     written beside it as PATH~SOURCE;
//   - MergeContinue checkpoints the working state with the head and the source as parents,
//     once no conflicting file still holds markers; MergeAbort restores the head.
//
// The source commit of a pending merge is a garbage-collection root (Roots).
const pfxPending = 'U'

func pendingKey(branch string) []byte { return append([]byte{pfxPending}, branch...) }

// PendingMerge is a merge waiting for its conflicts to be settled.
type PendingMerge struct {
	Branch       string     `json:"branch"`
	Source       string     `json:"source"` // the ref merged, as given
	SourceCommit store.ID   `json:"source_commit"`
	Head         store.ID   `json:"head"` // the target's checkpoint the merge started from
	Base         store.ID   `json:"base"` // the merge base
	Message      string     `json:"message,omitempty"`
	Conflicts    []Conflict `json:"conflicts"`
	Open         []string   `json:"open"`             // conflicting paths left to settle
	Copies       []string   `json:"copies,omitempty"` // PATH~SOURCE files holding the source's version
}

func (e *Engine) pendingMerge(branch string) (*PendingMerge, error) {
	v, ok, err := e.getKey(pendingKey(branch))
	if err != nil || !ok {
		return nil, err
	}
	p := &PendingMerge{}
	if err := json.Unmarshal(v, p); err != nil {
		return nil, fmt.Errorf("pending merge of %s: malformed record: %w", branch, err)
	}
	return p, nil
}

// cleanTake normalises the paths of MergeOptions.Take.
func cleanTake(take map[string]string) (map[string]string, error) {
	out := map[string]string{}
	for p, side := range take {
		if side != StrategyOurs && side != StrategyTheirs {
			return nil, fmt.Errorf("%w: --take %s: use ours or theirs", ErrInvalidName, side)
		}
		c := strings.Trim(path.Clean("/"+p), "/")
		if c == "" || strings.Contains(p, "..") {
			return nil, fmt.Errorf("%w: --take path %q: give a path inside the branch", ErrInvalidName, p)
		}
		out[c] = side
	}
	return out, nil
}

func (m *merger) strategyAt(p string) string {
	if s, ok := m.take[p]; ok {
		return s
	}
	return m.strategy
}

// unresolved returns the conflicting paths that no strategy resolved: those to settle by
// hand (markers) or that stop the merge (fail).
func (m *merger) unresolved() []string {
	var out []string
	seen := map[string]bool{}
	for _, c := range m.conflicts {
		if s := m.strategyAt(c.Path); (s == StrategyFail || s == StrategyMarkers) && !seen[c.Path] {
			seen[c.Path] = true
			out = append(out, c.Path)
		}
	}
	sort.Strings(out)
	return out
}

func (m *merger) markers(base, ours, theirs []byte) []byte {
	out, _ := diff3.MergeMarkers(base, ours, theirs, m.labels[0], m.labels[1])
	return out
}

// addTheirsCopies writes theirs' version of every open conflicting file that did not get
// markers beside ours' as PATH~SOURCE, and returns the new root and the copies' paths.
func (m *merger) addTheirsCopies(root store.ID, open []string) (store.ID, []string, error) {
	result := newView(m.e, root)
	var muts []tree.Mutation
	var copies []string
	suffix := "~" + strings.NewReplacer("/", "_", "@", "_", ":", "_").Replace(m.labels[1])
	for _, p := range open {
		n, err := lookupPath(m.ctx, m.theirs, p)
		if err != nil || !(n.IsRegular() || n.IsSymlink()) {
			continue // gone on theirs, or a directory: nothing to put beside it
		}
		if cur, err := lookupPath(m.ctx, result, p); err == nil && cur.Ino == n.Ino && m.marked[n.Ino] {
			continue // the markers are in the file
		}
		if cur, err := lookupPath(m.ctx, result, p); err == nil && m.hasMarkers(result, cur) {
			continue
		}
		dir, err := lookupPath(m.ctx, result, path.Dir(p))
		if err != nil || !dir.IsDir() {
			continue
		}
		name := path.Base(p) + suffix
		if _, err := lookupPath(m.ctx, result, path.Join(path.Dir(p), name)); err == nil {
			continue // a file of that name exists: leave it alone
		}
		ino, err := m.e.allocIno()
		if err != nil {
			return root, nil, err
		}
		c := *n
		c.Ino, c.Parent, c.Name, c.Nlink = ino, dir.Ino, name, 1
		muts = append(muts, tree.Mutation{Key: inodeKey(ino), Value: encodeInode(&c)},
			tree.Mutation{Key: direntKey(dir.Ino, name), Value: encodeDirent(ino, c.Mode)})
		for _, pre := range [][]byte{blockPrefix(n.Ino), xattrPrefix(n.Ino)} {
			if err := m.theirs.ScanLocked(m.ctx, pre, prefixEnd(pre), func(k, v []byte) error {
				nk := append([]byte{k[0]}, inodeKey(ino)[1:]...)
				muts = append(muts, tree.Mutation{Key: append(nk, k[9:]...), Value: bytes.Clone(v)})
				return nil
			}); err != nil {
				return root, nil, err
			}
		}
		copies = append(copies, path.Join(path.Dir(p), name))
	}
	sort.Slice(muts, func(i, j int) bool { return bytes.Compare(muts[i].Key, muts[j].Key) < 0 })
	root, err := m.e.tree.Apply(m.ctx, root, muts)
	return root, copies, err
}

func (m *merger) hasMarkers(v *Workspace, n *Inode) bool {
	if !n.IsRegular() || n.Size > maxDiffSize {
		return false
	}
	buf := make([]byte, n.Size)
	if _, err := v.Read(m.ctx, n.Ino, 0, buf); err != nil {
		return false
	}
	return diff3.HasMarkers(buf)
}

// startPending writes the merge result newRoot into dws's working state on top of its head
// and records the pending merge, in one synced batch after the head is committed. When the
// head is fold f, made outside the lock (nil: folded under it), the writes made since are
// carried onto the head, and the result is written under them. Callers hold dws.mu and op.
// It returns the reset hooks (mounts drop their caches).
func (e *Engine) startPending(ctx context.Context, dws *Workspace, f *frozenFold, oursRoot store.ID, pending int, newRoot store.ID, p *PendingMerge) ([]func(), error) {
	var carry func(*pebble.Batch, uint64) error
	if f != nil {
		carry = f.carryLocked(ctx)
	}
	if pending > 0 {
		b := e.db.NewBatch()
		defer b.Close()
		head, err := e.writeCommit(ctx, b, &Commit{Root: oursRoot, Parents: []store.ID{dws.BaseLocked()}, Time: e.now().UTC(), Branch: dws.Branch(), Message: "changes before merge of " + p.Source})
		if err != nil {
			return nil, err
		}
		if err := e.moveBaseCarry(dws, b, head, carry); err != nil {
			return nil, err
		}
		dws.ReplaceContentLocked(oursRoot, head)
	}
	p.Branch, p.Head = dws.Branch(), dws.BaseLocked()
	rec, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	t, err := dws.Begin()
	if err != nil {
		return nil, err
	}
	defer t.Abort()
	if err := e.tree.Diff(ctx, oursRoot, newRoot, func(k, va, vb []byte) error {
		if vb == nil {
			return t.Del(bytes.Clone(k))
		}
		if f != nil { // a directory a write since the fold changed too (clashesLocked)
			if v, ok := f.rebased(k); ok {
				return t.Set(bytes.Clone(k), v)
			}
		}
		return t.Set(bytes.Clone(k), bytes.Clone(vb))
	}); err != nil {
		return nil, err
	}
	if err := t.Batch().Set(pendingKey(dws.Branch()), rec, nil); err != nil {
		return nil, err
	}
	if err := t.Commit(true); err != nil {
		return nil, err
	}
	dws.PurgeCacheLocked()
	return dws.HooksLocked(), nil
}

// adopt makes commit id (a fold of the workspace's changes on its base, snapshotCommit) the
// branch's new base, if the workspace still holds exactly that state: the kept fold says so
// without folding again under the lock. It reports whether it did.
func (e *Engine) adopt(ctx context.Context, ws *Workspace, id store.ID) (bool, error) {
	c, err := e.ReadCommit(ctx, id)
	if err != nil {
		return false, err
	}
	ws.Lock()
	defer ws.Unlock()
	if len(c.Parents) != 1 || c.Parents[0] != ws.BaseLocked() || !e.foldIsCurrent(ws, id) {
		return false, nil // changed since: its changes stay uncommitted
	}
	b := e.db.NewBatch()
	defer b.Close()
	if err := e.moveBase(ws, b, id); err != nil {
		return false, err
	}
	ws.SetBaseLocked(c.Root, id) // same content: the key cache still holds
	return true, nil
}

// MergeStatus returns the pending merge into branch (nil if none), with Open narrowed to
// the conflicting paths that still hold conflict markers and the copies still present.
func (e *Engine) MergeStatus(ctx context.Context, branch string) (*PendingMerge, error) {
	defer e.op()()
	ws, err := e.Workspace(ctx, branch)
	if err != nil {
		return nil, err
	}
	p, err := e.pendingMerge(branch)
	if err != nil || p == nil {
		return p, err
	}
	ws.Lock()
	defer ws.Unlock()
	return p, e.narrowOpen(ctx, ws, p)
}

// narrowOpen keeps in p.Open the paths that still hold markers, and in p.Copies the copies
// that still exist. Callers hold ws.mu.
func (e *Engine) narrowOpen(ctx context.Context, ws *Workspace, p *PendingMerge) error {
	var open, copies []string
	for _, q := range p.Open {
		n, err := lookupPath(ctx, ws, q)
		if err != nil || !n.IsRegular() || n.Size > maxDiffSize {
			continue
		}
		buf := make([]byte, n.Size)
		if _, err := ws.ReadAllLocked(ctx, n, buf); err != nil {
			return err
		}
		if diff3.HasMarkers(buf) {
			open = append(open, q)
		}
	}
	for _, q := range p.Copies {
		if _, err := lookupPath(ctx, ws, q); err == nil {
			copies = append(copies, q)
		}
	}
	p.Open, p.Copies = open, copies
	return nil
}

// ContinueResult is what MergeContinue did.
type ContinueResult struct {
	Commit  store.ID
	Removed []string // PATH~SOURCE copies removed before the checkpoint
}

// MergeContinue completes a pending merge into branch: it checkpoints the branch's state
// with its head and the merged source as parents, folding outside the lock. It refuses
// while a conflicting file still holds conflict markers. Copies of the source's versions
// still present are removed first.
func (e *Engine) MergeContinue(ctx context.Context, branch string) (*ContinueResult, error) {
	defer e.op()()
	ws, err := e.Workspace(ctx, branch)
	if err != nil {
		return nil, err
	}
	ws.Lock()
	defer ws.Unlock()
	p, err := e.pendingMerge(branch)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, fmt.Errorf("%w: no merge into %s is pending", ErrNotFound, branch)
	}
	if err := e.narrowOpen(ctx, ws, p); err != nil {
		return nil, err
	}
	if len(p.Open) > 0 {
		return nil, fmt.Errorf("%w: %s still holds conflict markers; edit it (or abort with: agentfs merge --abort %s)", ErrConflict, strings.Join(p.Open, ", "), branch)
	}
	res := &ContinueResult{}
	for _, q := range p.Copies {
		if err := removePathLocked(ctx, ws, q); err != nil {
			return nil, err
		}
		res.Removed = append(res.Removed, q)
	}
	// Fold outside the lock, like a checkpoint (frozenFold): the merge holds the state
	// checked above, and writes made while it folds are carried past it.
	f := e.freezeLocked(ws)
	defer f.close()
	ws.Unlock()
	if err := f.fold(ctx); err != nil {
		ws.Lock()
		return nil, err
	}
	ws.Lock()
	if q, err := e.pendingMerge(branch); err != nil {
		return nil, err
	} else if q == nil || q.Head != p.Head {
		return nil, fmt.Errorf("%w: the merge into %s was aborted or restarted meanwhile", ErrBusy, branch)
	}
	root, blocks, carry := f.root, f.blocks, f.carryLocked(ctx)
	if !f.currentLocked() {
		var err error
		if root, _, blocks, err = ws.FoldBlocksLocked(ctx); err != nil {
			return nil, err
		}
		carry = nil
	}
	msg := p.Message
	if msg == "" {
		msg = fmt.Sprintf("merge %s into %s", p.Source, branch)
	}
	b := e.db.NewBatch()
	defer b.Close()
	id, err := e.writeCommit(ctx, b, &Commit{Root: root, Parents: []store.ID{ws.BaseLocked(), p.SourceCommit}, Time: e.now().UTC(), Branch: branch, Message: msg})
	if err != nil {
		return nil, err
	}
	if err := b.Delete(pendingKey(branch), nil); err != nil {
		return nil, err
	}
	if err := e.moveBaseCarry(ws, b, id, carry); err != nil {
		return nil, err
	}
	ws.SetBaseLocked(root, id)
	if carry != nil {
		blocks = f.keptBlocks()
	}
	ws.CacheLocked(blocks)
	res.Commit = id
	return res, nil
}

// removePathLocked unlinks a file by path. Callers hold ws.mu.
func removePathLocked(ctx context.Context, ws *Workspace, p string) error {
	dir, err := lookupPath(ctx, ws, path.Dir(p))
	if err != nil {
		return err
	}
	n, err := lookupPath(ctx, ws, p)
	if err != nil {
		return err
	}
	t, err := ws.Begin()
	if err != nil {
		return err
	}
	defer t.Abort()
	if err := ws.UnlinkLocked(ctx, t, dir, path.Base(p), n); err != nil {
		return err
	}
	return t.Commit(false)
}

// MergeAbort ends a pending merge into branch and restores the branch's head: the state
// before the merge (its uncommitted changes then were checkpointed into the head).
func (e *Engine) MergeAbort(ctx context.Context, branch string) error {
	ws, err := e.Workspace(ctx, branch)
	if err != nil {
		return err
	}
	done := e.op()
	hooks, err := func() ([]func(), error) {
		p, err := e.pendingMerge(branch)
		if err != nil {
			return nil, err
		}
		if p == nil {
			return nil, fmt.Errorf("%w: no merge into %s is pending", ErrNotFound, branch)
		}
		c, err := e.ReadCommit(ctx, p.Head)
		if err != nil {
			return nil, err
		}
		ws.Lock()
		defer ws.Unlock()
		b := e.db.NewBatch()
		defer b.Close()
		if err := b.Delete(pendingKey(branch), nil); err != nil {
			return nil, err
		}
		if err := e.moveBase(ws, b, p.Head); err != nil {
			return nil, err
		}
		ws.ReplaceContentLocked(c.Root, p.Head)
		ws.NewGenerationLocked() // like a rollback: descriptors of the discarded state write no more
		return ws.HooksLocked(), nil
	}()
	done()
	for _, h := range hooks {
		h()
	}
	return err
}
