package branch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"sort"

	"github.com/agentfs/agentfs/branch/tree"
	"github.com/agentfs/agentfs/internal/diff3"
	"github.com/agentfs/agentfs/store"
)

// ErrConflict is returned by a merge that stopped on conflicts.
var ErrConflict = errors.New("merge conflict")

// Merge strategies.
const (
	StrategyFail   = "fail"   // report conflicts and change nothing
	StrategyOurs   = "ours"   // resolve every conflict with the target branch's side
	StrategyTheirs = "theirs" // resolve every conflict with the merged-in side
	// StrategyMarkers writes conflicting text regions with git-style markers and the other
	// side's version of other conflicting files beside them, and leaves the merge pending
	// (pending.go).
	StrategyMarkers = "markers"
)

// Conflict kinds.
const (
	ConflictBothModified = "both modified"
	ConflictModifyDelete = "modify/delete"
	ConflictAddAdd       = "add/add"
	ConflictFileDir      = "file/directory"
	ConflictMode         = "mode"
)

// MergeOptions configure a merge.
type MergeOptions struct {
	Strategy string // StrategyFail (default), StrategyOurs or StrategyTheirs
	Message  string
	DryRun   bool
	// Take resolves the conflicts of some paths with one side: path -> StrategyOurs or
	// StrategyTheirs. The other conflicts follow Strategy.
	Take map[string]string
}

// Conflict is one path both sides changed in ways that do not combine.
type Conflict struct {
	Path string `json:"path"`
	Kind string `json:"kind"`
}

// MergeResult describes a merge.
type MergeResult struct {
	Commit    store.ID   // the merge checkpoint; zero for a dry run, a conflict or no-op
	Base      store.ID   // the merge base
	UpToDate  bool       // the source was already part of the target
	Conflicts []Conflict // sorted by path
	Changes   []Change   // what the merge changes in the target
	// Pending is set when conflicts were written into the target's files
	// (StrategyMarkers): the merge waits for MergeContinue or MergeAbort.
	Pending bool
	// SourceCheckpoint is the checkpoint the source branch's uncommitted changes became
	// when the merge went through (zero if the source had none, or changed meanwhile).
	SourceCheckpoint store.ID

	srcWS     *Workspace // the source branch, when its changes were folded into srcCommit
	srcCommit store.ID
}

// Merge merges ref src into branch dst: a three-way merge against the nearest common
// checkpoint. Changes on one side only are taken; text files changed on both sides merge
// line by line; anything else changed on both sides is a conflict. dst's uncommitted changes
// are checkpointed first, and the result is a checkpoint with both parents. The cost follows
// the changes on both sides since the base: the diffs skip shared subtrees.
//
// Merges into one branch are serialised by the branch's lock, which is held from reading dst
// to moving it, so concurrent merges (and writes through a mount) are never lost.
func (e *Engine) Merge(ctx context.Context, src, dst string, o MergeOptions) (*MergeResult, error) {
	switch o.Strategy {
	case "":
		o.Strategy = StrategyFail
	case StrategyFail, StrategyOurs, StrategyTheirs, StrategyMarkers:
	default:
		return nil, fmt.Errorf("%w: unknown merge strategy %q (use fail, ours or theirs)", ErrInvalidName, o.Strategy)
	}
	take, err := cleanTake(o.Take)
	if err != nil {
		return nil, err
	}
	o.Take = take
	dws, err := e.Workspace(ctx, dst)
	if err != nil {
		return nil, err
	}
	done := e.op()
	res, hooks, err := e.merge(ctx, src, dws, o)
	if res != nil && res.srcWS != nil && (err == nil || res.Pending) && !o.DryRun {
		// The merge used a commit of the source's uncommitted changes: make it the source's
		// checkpoint, so that merging the source again finds its work merged.
		if ok, aerr := e.adopt(ctx, res.srcWS, res.srcCommit); aerr != nil && err == nil {
			err = aerr
		} else if ok {
			res.SourceCheckpoint = res.srcCommit
		}
	}
	done()
	for _, h := range hooks {
		h()
	}
	return res, err
}

func (e *Engine) merge(ctx context.Context, src string, dws *Workspace, o MergeOptions) (*MergeResult, []func(), error) {
	r, err := e.Resolve(ctx, src)
	if err != nil {
		return nil, nil, err
	}
	if r.Branch == dws.Branch() {
		return nil, nil, fmt.Errorf("%w: cannot merge branch %s into itself", ErrInvalidName, src)
	}
	// Fold the source before taking the target's lock: two merges in opposite directions
	// must not wait on each other.
	srcCommit := r.Commit
	var sws *Workspace
	if r.Branch != "" {
		// A source branch's uncommitted changes are folded into a commit that does not
		// move the source yet: a merge that fails changes nothing (see Merge).
		if sws, err = e.Workspace(ctx, r.Branch); err != nil {
			return nil, nil, err
		}
		if srcCommit, err = e.snapshotCommit(ctx, sws, "checkpoint for merge into "+dws.Branch()); err != nil {
			return nil, nil, err
		}
	} else if err := e.retainCommit(ctx, srcCommit); err != nil {
		return nil, nil, err
	}
	checkQuota, err := e.mergeQuota(ctx, dws.Branch(), src)
	if err != nil {
		return nil, nil, err
	}
	if err := e.noPendingMerge(dws.Branch()); err != nil {
		return nil, nil, err
	}
	// Fold the target outside its lock too (frozenFold): writers on it go on while its
	// blocks are hashed and stored and while the merge is worked out. The merge takes the
	// writes that completed before the fold's snapshot; those made since are carried on top
	// of its result, unless one touched a key the merge changes: then it folds and merges
	// again under the lock.
	f, err := e.foldOutside(ctx, dws)
	if err != nil {
		return nil, nil, err
	}
	defer f.close()
	ff := f // nil once folded again under the lock
	res := &MergeResult{}
	if sws != nil && srcCommit != sws.Base() {
		res.srcWS, res.srcCommit = sws, srcCommit
	}
	p, err := e.planMerge(ctx, src, srcCommit, dws.Branch(), f.root, f.base, o, res)
	if p == nil || err != nil {
		return resultOf(res, err)
	}
	if afterMergeFold != nil {
		afterMergeFold()
	}
	dws.Lock()
	defer dws.Unlock()
	if err := e.noPendingMerge(dws.Branch()); err != nil {
		return nil, nil, err
	}
	pending := f.n
	clash, err := f.clashesLocked(ctx, p.newRoot)
	if err != nil {
		return nil, nil, err
	}
	if clash || !f.currentLocked() {
		root, n, err := dws.FoldLocked(ctx)
		if err != nil {
			return nil, nil, err
		}
		res.Conflicts, res.Changes = nil, nil
		if p, err = e.planMerge(ctx, src, srcCommit, dws.Branch(), root, dws.BaseLocked(), o, res); p == nil || err != nil {
			return resultOf(res, err)
		}
		pending, ff = n, nil
	}
	if err := checkQuota(p.add); err != nil {
		return res, nil, err
	}
	if len(p.open) > 0 {
		res.Pending = true
		hooks, err := e.startPending(ctx, dws, ff, p.oursRoot, pending, p.newRoot, &PendingMerge{
			Source: src, SourceCommit: srcCommit, Base: res.Base, Message: o.Message, Conflicts: res.Conflicts, Open: p.open, Copies: p.copies})
		if err != nil {
			return nil, nil, err
		}
		return res, hooks, fmt.Errorf("%w: %d conflicting paths written into %s; edit them, then run: agentfs merge --continue %s (or --abort)", ErrConflict, len(p.open), dws.Branch(), dws.Branch())
	}
	msg := o.Message
	if msg == "" {
		msg = fmt.Sprintf("merge %s into %s", src, dws.Branch())
	}
	if res.Commit, err = e.commitResult(ctx, dws, ff, p.oursRoot, pending, p.newRoot, []store.ID{srcCommit}, msg, "changes before merge of "+src); err != nil {
		return nil, nil, err
	}
	return res, dws.HooksLocked(), nil
}

// resultOf returns a merge that ended before changing anything: its result goes with a
// conflict (which it lists) or no error.
func resultOf(res *MergeResult, err error) (*MergeResult, []func(), error) {
	if err != nil && !errors.Is(err, ErrConflict) {
		return nil, nil, err
	}
	return res, nil, err
}

// afterMergeFold, when set (tests), runs between a merge's or revert's fold and its commit,
// with no lock held.
var afterMergeFold func()

// noPendingMerge refuses a merge into branch while another waits for its conflicts.
func (e *Engine) noPendingMerge(branch string) error {
	if p, err := e.pendingMerge(branch); err != nil {
		return err
	} else if p != nil {
		return fmt.Errorf("%w: a merge of %s into %s is pending; finish it with: agentfs merge --continue %s (or --abort)", ErrBusy, p.Source, branch, branch)
	}
	return nil
}

// mergePlan is a merge worked out on a fold of the target: the tree it makes and the
// conflicts left to settle in the files.
type mergePlan struct {
	oursRoot, newRoot store.ID
	open, copies      []string
	add               Usage // what the merge adds to the target (for its quota)
}

// planMerge works out the merge of srcCommit into the tree oursRoot, whose branch dst
// started from commit head. It reads only trees, so it runs without the target's lock. It
// fills res and returns a nil plan when the merge ends here: up to date, stopped on
// conflicts (with the error) or a dry run.
func (e *Engine) planMerge(ctx context.Context, src string, srcCommit store.ID, dst string, oursRoot, head store.ID, o MergeOptions, res *MergeResult) (*mergePlan, error) {
	base, err := e.mergeBase(ctx, srcCommit, head)
	if err != nil {
		return nil, err
	}
	res.Base = base
	if base == srcCommit {
		res.UpToDate = true
		return nil, nil
	}
	var baseRoot store.ID
	if !base.IsZero() {
		c, err := e.ReadCommit(ctx, base)
		if err != nil {
			return nil, err
		}
		baseRoot = c.Root
	}
	sc, err := e.ReadCommit(ctx, srcCommit)
	if err != nil {
		return nil, err
	}
	// Both sides are checked where they differ from the base (a crafted tree pulled into a
	// repository by an older agentfs, or a damaged one, must not reach the merged tree).
	for _, side := range []struct {
		name string
		root store.ID
	}{{src, sc.Root}, {dst, oursRoot}} {
		if err := e.checkTree(ctx, side.root, baseRoot); err != nil {
			return nil, fmt.Errorf("%s: %w", side.name, err)
		}
	}
	m := e.newMerger(ctx, o.Strategy, baseRoot, oursRoot, sc.Root)
	m.take, m.labels = o.Take, [2]string{dst, src}
	if err := m.run(); err != nil {
		return nil, err
	}
	res.Conflicts = m.conflicts
	p := &mergePlan{oursRoot: oursRoot, open: m.unresolved()}
	if len(p.open) > 0 && o.Strategy != StrategyMarkers {
		return nil, fmt.Errorf("%w: %d conflicting paths; nothing was changed (merge with --conflicts=markers to settle them in the files, or --take ours|theirs PATH, or --strategy ours|theirs)", ErrConflict, len(p.open))
	}
	if p.newRoot, err = e.tree.Apply(ctx, oursRoot, m.sorted()); err != nil {
		return nil, err
	}
	if len(p.open) > 0 {
		if p.newRoot, p.copies, err = m.addTheirsCopies(p.newRoot, p.open); err != nil {
			return nil, err
		}
	}
	if res.Changes, err = e.DiffRoots(ctx, oursRoot, p.newRoot); err != nil {
		return nil, err
	}
	if o.DryRun {
		return nil, nil
	}
	if p.add, err = e.mergeAdds(ctx, oursRoot, p.newRoot); err != nil {
		return nil, err
	}
	return p, nil
}

// mergeBase returns the nearest common ancestor of commits a and b (zero if none), from the
// commit graph alone (commit times can be skewed between hosts): among the common ancestors
// that are not ancestors of another common ancestor (the best bases), the one fewest parent
// steps from b, ties broken by the smallest id so that every host picks the same.
func (e *Engine) mergeBase(ctx context.Context, a, b store.ID) (store.ID, error) {
	inA, err := e.ancestors(ctx, a, nil)
	if err != nil {
		return store.ID{}, err
	}
	distB := map[store.ID]int{}
	if _, err := e.ancestors(ctx, b, distB); err != nil {
		return store.ID{}, err
	}
	var common []store.ID
	for id := range distB {
		if inA[id] {
			common = append(common, id)
		}
	}
	if len(common) == 0 {
		return store.ID{}, nil
	}
	// Everything reachable from a common ancestor's parents is not a best base. Nearest
	// first, and the marking walk stops at marked commits, so each commit is read once.
	sort.Slice(common, func(i, j int) bool { return distB[common[i]] < distB[common[j]] })
	below := map[store.ID]bool{}
	for _, id := range common {
		if below[id] {
			continue
		}
		queue := []store.ID{id}
		for len(queue) > 0 {
			c, err := e.ReadCommit(ctx, queue[0])
			queue = queue[1:]
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return store.ID{}, err
			}
			for _, p := range c.Parents {
				if !below[p] {
					below[p] = true
					queue = append(queue, p)
				}
			}
		}
	}
	var best store.ID
	found := false
	for _, id := range common {
		if below[id] {
			continue
		}
		if !found || distB[id] < distB[best] || distB[id] == distB[best] && bytes.Compare(id[:], best[:]) < 0 {
			best, found = id, true
		}
	}
	return best, nil
}

// ancestors returns start and every commit reachable from it through parents (commits
// missing locally end their line). With dist, it also records each one's distance in parent
// steps from start (breadth first, so the shortest).
func (e *Engine) ancestors(ctx context.Context, start store.ID, dist map[store.ID]int) (map[store.ID]bool, error) {
	seen := map[store.ID]bool{start: true}
	if dist != nil {
		dist[start] = 0
	}
	queue := []store.ID{start}
	for len(queue) > 0 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		id := queue[0]
		queue = queue[1:]
		c, err := e.ReadCommit(ctx, id)
		if errors.Is(err, store.ErrNotFound) && id != start {
			delete(seen, id) // history cut off here: not a candidate
			delete(dist, id)
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, p := range c.Parents {
			if !seen[p] {
				seen[p] = true
				if dist != nil {
					dist[p] = dist[id] + 1
				}
				queue = append(queue, p)
			}
		}
	}
	return seen, nil
}

// change is one key's change from the base to a side.
type change struct {
	old, new       []byte
	hadOld, hasNew bool
}

type sideDiff struct {
	keys   map[string]*change
	byIno  map[uint64][]string // inode, xattr and block keys by inode
	dirent []string            // dirent keys, sorted
}

func (m *merger) diff(a, b *Workspace) (*sideDiff, error) {
	d := &sideDiff{keys: map[string]*change{}, byIno: map[uint64][]string{}}
	err := m.e.tree.Diff(m.ctx, a.RootLocked(), b.RootLocked(), func(k, va, vb []byte) error {
		key := string(k)
		d.keys[key] = &change{old: bytes.Clone(va), new: bytes.Clone(vb), hadOld: va != nil, hasNew: vb != nil}
		if k[0] == kindDirent {
			d.dirent = append(d.dirent, key)
		} else {
			d.byIno[keyIno(k)] = append(d.byIno[keyIno(k)], key)
		}
		return nil
	})
	return d, err
}

// merger computes the mutations that turn ours into the merge result.
type merger struct {
	e                  *Engine
	ctx                context.Context
	strategy           string
	base, ours, theirs *Workspace
	a, b               *sideDiff // base->ours, base->theirs
	muts               map[string]*tree.Mutation
	conflicts          []Conflict
	oursWon            map[uint64]bool   // conflicted inodes resolved with ours' side
	take               map[string]string // per-path strategy (MergeOptions.Take)
	marked             map[uint64]bool   // inodes whose content got conflict markers
	labels             [2]string         // names of ours and theirs in conflict markers
	handled            map[uint64]bool   // inodes of theirs already merged by mergeReplaced
	handledKey         map[string]bool   // dirents of theirs already merged by mergeReplaced
}

func (m *merger) set(key string, v []byte, present bool) {
	m.muts[key] = &tree.Mutation{Key: []byte(key), Value: v, Delete: !present}
}

// takeTheirs makes every listed key hold theirs' value.
func (m *merger) takeTheirs(keys []string) {
	for _, k := range keys {
		if c, ok := m.b.keys[k]; ok {
			m.set(k, c.new, c.hasNew)
		} else if c, ok := m.a.keys[k]; ok {
			m.set(k, c.old, c.hadOld) // ours changed it, theirs kept the base
		}
	}
}

func (m *merger) sorted() []tree.Mutation {
	out := make([]tree.Mutation, 0, len(m.muts))
	for _, mu := range m.muts {
		out = append(out, *mu)
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i].Key, out[j].Key) < 0 })
	return out
}

func (m *merger) run() error {
	var err error
	if m.a, err = m.diff(m.base, m.ours); err != nil {
		return err
	}
	if m.b, err = m.diff(m.base, m.theirs); err != nil {
		return err
	}
	inos := make([]uint64, 0, len(m.b.byIno))
	for ino := range m.b.byIno {
		inos = append(inos, ino)
	}
	sort.Slice(inos, func(i, j int) bool { return inos[i] < inos[j] })
	if err := m.mergeReplaced(); err != nil {
		return err
	}
	for _, ino := range inos {
		if m.handled[ino] {
			continue
		}
		if err := m.mergeInode(ino); err != nil {
			return err
		}
	}
	for _, k := range m.b.dirent {
		if m.handledKey[k] {
			continue
		}
		if err := m.mergeDirent(k); err != nil {
			return err
		}
	}
	if err := m.checkOrphans(); err != nil {
		return err
	}
	sort.Slice(m.conflicts, func(i, j int) bool { return m.conflicts[i].Path < m.conflicts[j].Path })
	return nil
}

func (m *merger) conflict(p, kind string) {
	m.conflicts = append(m.conflicts, Conflict{Path: p, Kind: kind})
}

// pathOf names an inode from whichever side still has it.
func (m *merger) pathOf(ino uint64) string {
	for _, ws := range []*Workspace{m.ours, m.theirs, m.base} {
		if p, err := newPather(m.e.tree, ws.RootLocked()).path(m.ctx, ino); err == nil {
			return p
		}
	}
	return fmt.Sprintf("(inode %d)", ino)
}

func (m *merger) direntPath(key string) string {
	parent, name := keyIno([]byte(key)), key[9:]
	return path.Join(m.pathOf(parent), name)
}

// mergeInode merges the inode, xattr and block keys of one inode that theirs changed.
func (m *merger) mergeInode(ino uint64) error {
	kb := m.b.byIno[ino]
	ka := m.a.byIno[ino]
	if len(ka) == 0 {
		m.takeTheirs(kb)
		return nil
	}
	ik := inodeKey(ino)
	ca, cb := m.a.keys[string(ik)], m.b.keys[string(ik)]
	delA, delB := ca != nil && !ca.hasNew, cb != nil && !cb.hasNew
	switch {
	case delA && delB:
		return nil
	case delA || delB:
		return m.resolveInode(ino, ConflictModifyDelete, append(ka, kb...))
	}
	o, err := m.base.InodeLocked(m.ctx, ino)
	if err != nil {
		return err
	}
	a, err := m.ours.InodeLocked(m.ctx, ino)
	if err != nil {
		return err
	}
	b, err := m.theirs.InodeLocked(m.ctx, ino)
	if err != nil {
		return err
	}
	merged := *a
	var kinds []string
	three := func(o, a, b uint32) (uint32, bool) {
		switch {
		case a == b || b == o:
			return a, true
		case a == o:
			return b, true
		}
		return a, false
	}
	var ok1, ok2, ok3 bool
	merged.Mode, ok1 = three(o.Mode, a.Mode, b.Mode)
	merged.Uid, ok2 = three(o.Uid, a.Uid, b.Uid)
	merged.Gid, ok3 = three(o.Gid, a.Gid, b.Gid)
	if !ok1 || !ok2 || !ok3 {
		kinds = append(kinds, ConflictMode)
	}
	switch {
	case b.Parent == o.Parent && b.Name == o.Name:
	case a.Parent == o.Parent && a.Name == o.Name:
		merged.Parent, merged.Name = b.Parent, b.Name
	case a.Parent != b.Parent || a.Name != b.Name:
		kinds = append(kinds, ConflictBothModified) // renamed differently on both sides
	}
	merged.Nlink = a.Nlink + b.Nlink - o.Nlink
	merged.Atime, merged.Ctime = max(a.Atime, b.Atime), max(a.Ctime, b.Ctime)
	if a.IsDir() {
		merged.Mtime = max(a.Mtime, b.Mtime)
	}
	// xattrs: key by key.
	for _, k := range kb {
		if k[0] != kindXattr {
			continue
		}
		if c, ok := m.a.keys[k]; ok && (c.hasNew != m.b.keys[k].hasNew || !bytes.Equal(c.new, m.b.keys[k].new)) {
			kinds = append(kinds, ConflictBothModified)
		}
	}
	contentKeys, contentErr := m.mergeContent(ino, o, a, b, &merged, ka, kb)
	if contentErr == errContentConflict {
		kinds = append(kinds, ConflictBothModified)
	} else if contentErr != nil {
		return contentErr
	}
	if len(kinds) > 0 {
		return m.resolveInode(ino, kinds[0], append(ka, kb...))
	}
	if m.marked[ino] {
		m.conflict(m.pathOf(ino), ConflictBothModified)
	}
	for _, k := range kb {
		if k[0] == kindXattr {
			m.takeTheirs([]string{k})
		}
	}
	for k, mu := range contentKeys {
		m.muts[k] = mu
	}
	m.set(string(inodeKey(ino)), encodeInode(&merged), true)
	return nil
}

var errContentConflict = errors.New("content conflict")

// mergeContent merges the content of an inode both sides changed, filling the content
// fields of merged and returning the block mutations.
func (m *merger) mergeContent(ino uint64, o, a, b *Inode, merged *Inode, ka, kb []string) (map[string]*tree.Mutation, error) {
	blockChanged := func(keys []string) bool {
		for _, k := range keys {
			if k[0] == kindBlock {
				return true
			}
		}
		return false
	}
	sameContent := func(x, y *Inode) bool {
		return x.Size == y.Size && x.Inline == y.Inline && bytes.Equal(x.Data, y.Data)
	}
	changedA := !sameContent(o, a) || blockChanged(ka)
	changedB := !sameContent(o, b) || blockChanged(kb)
	out := map[string]*tree.Mutation{}
	takeB := func() {
		merged.Size, merged.Inline, merged.Data, merged.Mtime = b.Size, b.Inline, b.Data, b.Mtime
		for _, k := range kb {
			if k[0] != kindBlock {
				continue
			}
			c := m.b.keys[k]
			out[k] = &tree.Mutation{Key: []byte(k), Value: c.new, Delete: !c.hasNew}
		}
	}
	switch {
	case !changedB:
		return out, nil
	case !changedA:
		takeB()
		return out, nil
	}
	// Both changed. Identical results combine.
	same := sameContent(a, b)
	for _, k := range append(append([]string(nil), ka...), kb...) {
		if k[0] != kindBlock {
			continue
		}
		va, _, _ := m.ours.GetLocked(m.ctx, []byte(k))
		vb, _, _ := m.theirs.GetLocked(m.ctx, []byte(k))
		if !bytes.Equal(va, vb) {
			same = false
		}
	}
	if same {
		merged.Mtime = max(a.Mtime, b.Mtime)
		return out, nil
	}
	if !a.IsRegular() {
		return nil, errContentConflict
	}
	const maxMergeSize = 64 << 20
	if o.Size > maxMergeSize || a.Size > maxMergeSize || b.Size > maxMergeSize {
		return nil, errContentConflict
	}
	var texts [3][]byte
	for i, side := range []struct {
		ws *Workspace
		n  *Inode
	}{{m.base, o}, {m.ours, a}, {m.theirs, b}} {
		buf := make([]byte, side.n.Size)
		if _, err := side.ws.Read(m.ctx, ino, 0, buf); err != nil {
			return nil, err
		}
		if !diff3.IsText(buf) {
			return nil, errContentConflict
		}
		texts[i] = buf
	}
	result, ok := diff3.Merge(texts[0], texts[1], texts[2])
	if !ok && m.strategyAt(m.pathOf(ino)) == StrategyMarkers {
		result, ok = m.markers(texts[0], texts[1], texts[2]), true
		m.marked[ino] = true
	}
	if !ok {
		return nil, errContentConflict
	}
	merged.Mtime = max(a.Mtime, b.Mtime)
	return m.contentMutations(merged, result)
}

// replacements maps, for one side, every regular file that a rename-over replaced (sed -i,
// editors that save through a temporary file, git checkout) to its replacement, with the
// dirent key where that happened.
func (m *merger) replacements(d *sideDiff) map[uint64][2]any {
	out := map[uint64][2]any{}
	for _, k := range d.dirent {
		c := d.keys[k]
		x, tx, ok1 := decodeDirent(c.old)
		y, ty, ok2 := decodeDirent(c.new)
		if ok1 && ok2 && x != y && tx == 0o100000 && ty == 0o100000 {
			out[x] = [2]any{y, k}
		}
	}
	return out
}

// mergeReplaced merges a file one side replaced by renaming a new file over it while the
// other side edited it (or replaced it too), as an edit of the same path: the content merges
// three-way into ours' inode and theirs' replacement is dropped.
func (m *merger) mergeReplaced() error {
	repA, repB := m.replacements(m.a), m.replacements(m.b)
	for x, rb := range repB {
		oursIno, theirsIno, key := x, rb[0].(uint64), rb[1].(string)
		_, inA := m.a.keys[string(inodeKey(x))]
		ra, replacedA := repA[x]
		switch {
		case replacedA:
			oursIno = ra[0].(uint64)
		case !inA:
			continue // ours left the file alone: theirs' replacement applies as it is
		case !m.a.keys[string(inodeKey(x))].hasNew:
			continue // ours deleted it: modify/delete, found by mergeInode
		}
		m.handled[x], m.handled[theirsIno], m.handledKey[key] = true, true, true
		if err := m.mergeFile(x, oursIno, m.theirs, theirsIno, key); err != nil {
			return err
		}
	}
	for x, ra := range repA {
		if _, ok := repB[x]; ok {
			continue
		}
		cb, inB := m.b.keys[string(inodeKey(x))]
		if !inB || !cb.hasNew {
			continue // theirs left it alone or deleted it too
		}
		m.handled[x] = true
		if err := m.mergeFile(x, ra[0].(uint64), m.theirs, x, ra[1].(string)); err != nil {
			return err
		}
	}
	return nil
}

// mergeFile merges the content of base inode x, ours' inode oursIno and theirs' inode
// theirsIno into oursIno. On a conflict, theirs' side wins only with StrategyTheirs.
func (m *merger) mergeFile(x, oursIno uint64, theirs *Workspace, theirsIno uint64, key string) error {
	read := func(ws *Workspace, ino uint64) (*Inode, []byte, error) {
		n, err := ws.InodeLocked(m.ctx, ino)
		if err != nil {
			return nil, nil, err
		}
		if n.Size > 64<<20 {
			return n, nil, nil
		}
		buf := make([]byte, n.Size)
		_, err = ws.Read(m.ctx, ino, 0, buf)
		return n, buf, err
	}
	o, ob, err := read(m.base, x)
	if err != nil {
		return err
	}
	a, ab, err := read(m.ours, oursIno)
	if err != nil {
		return err
	}
	b, bb, err := read(theirs, theirsIno)
	if err != nil {
		return err
	}
	merged, ok := []byte(nil), false
	p := m.direntPath(key)
	if ob != nil && ab != nil && bb != nil && diff3.IsText(ob) && diff3.IsText(ab) && diff3.IsText(bb) {
		merged, ok = diff3.Merge(ob, ab, bb)
		if !ok && m.strategyAt(p) == StrategyMarkers {
			merged, ok = m.markers(ob, ab, bb), true
			m.conflict(p, ConflictBothModified)
		}
	}
	mode, modeOK := a.Mode, true
	switch {
	case b.Mode == o.Mode || b.Mode == a.Mode:
	case a.Mode == o.Mode:
		mode = b.Mode
	default:
		modeOK = false
	}
	if !ok || !modeOK {
		kind := ConflictBothModified
		if ok {
			kind = ConflictMode
		}
		m.conflict(p, kind)
		if m.strategyAt(p) == StrategyTheirs {
			m.takeTheirsFile(x, oursIno, theirsIno, key)
		}
		return nil
	}
	n := *a
	n.Mode = mode
	n.Mtime = max(a.Mtime, b.Mtime)
	muts, err := m.contentMutations(&n, merged)
	if err != nil {
		return err
	}
	for k, mu := range muts {
		m.muts[k] = mu
	}
	m.set(string(inodeKey(n.Ino)), encodeInode(&n), true)
	return nil
}

// takeTheirsFile makes the name at key theirs' file again after a conflict between an
// edit and a replacement: theirs' keys of the base inode x and of its replacement, its
// name, and none of ours' replacement.
func (m *merger) takeTheirsFile(x, oursIno, theirsIno uint64, key string) {
	m.takeTheirs(m.b.byIno[x])
	if theirsIno != x {
		m.takeTheirs(m.b.byIno[theirsIno])
	}
	m.takeTheirs([]string{key})
	if oursIno != x {
		m.dropNew(encodeDirent(oursIno, 0), m.a, func(string) {})
	}
}

// contentMutations sets n's content to data in the merge result: inline when small, else
// blocks, replacing every block ours had.
func (m *merger) contentMutations(n *Inode, data []byte) (map[string]*tree.Mutation, error) {
	out := map[string]*tree.Mutation{}
	if err := m.ours.ScanLocked(m.ctx, blockPrefix(n.Ino), prefixEnd(blockPrefix(n.Ino)), func(k, v []byte) error {
		out[string(k)] = &tree.Mutation{Key: bytes.Clone(k), Delete: true}
		return nil
	}); err != nil {
		return nil, err
	}
	n.Size = uint64(len(data))
	if len(data) <= InlineMax {
		n.Inline, n.Data = true, data
		return out, nil
	}
	n.Inline, n.Data = false, nil
	for index := 0; index*BlockSize < len(data); index++ {
		chunk := data[index*BlockSize : min(len(data), (index+1)*BlockSize)]
		if isZero(chunk) {
			continue // a hole: the delete above stands
		}
		id, err := m.e.st.Put(m.ctx, chunk)
		if err != nil {
			return nil, err
		}
		k := string(blockKey(n.Ino, uint64(index)))
		out[k] = &tree.Mutation{Key: []byte(k), Value: id[:]}
	}
	return out, nil
}

// resolveInode records a conflict on an inode and applies the strategy: theirs takes all its
// keys and names from theirs; ours (and fail, which writes nothing) keeps ours' and makes
// mergeDirent ignore theirs' renames and removals of it.
func (m *merger) resolveInode(ino uint64, kind string, keys []string) error {
	p := m.pathOf(ino)
	m.conflict(p, kind)
	if m.strategyAt(p) != StrategyTheirs {
		m.oursWon[ino] = true
		return nil
	}
	m.takeTheirs(keys)
	for _, k := range m.a.dirent {
		c := m.a.keys[k]
		if direntNames(c.old, ino) || direntNames(c.new, ino) {
			m.takeTheirs([]string{k})
		}
	}
	return nil
}

// direntNames reports whether a dirent value points at ino.
func direntNames(v []byte, ino uint64) bool {
	got, _, ok := decodeDirent(v)
	return ok && got == ino
}

func (m *merger) mergeDirent(k string) error {
	cb := m.b.keys[k]
	for ino := range m.oursWon {
		if direntNames(cb.old, ino) || direntNames(cb.new, ino) {
			return nil // the inode's conflict kept ours' side, names included
		}
	}
	ca, ok := m.a.keys[k]
	if !ok {
		m.takeTheirs([]string{k})
		return nil
	}
	if ca.hasNew == cb.hasNew && bytes.Equal(ca.new, cb.new) {
		return nil
	}
	kind := ConflictBothModified
	switch {
	case !ca.hadOld && ca.hasNew && cb.hasNew:
		_, ta, _ := decodeDirent(ca.new)
		_, tb, _ := decodeDirent(cb.new)
		kind = ConflictAddAdd
		if (ta == 0o040000) != (tb == 0o040000) {
			kind = ConflictFileDir
		}
	case !ca.hasNew || !cb.hasNew:
		kind = ConflictModifyDelete
	}
	p := m.direntPath(k)
	m.conflict(p, kind)
	switch m.strategyAt(p) {
	case StrategyTheirs:
		m.takeTheirs([]string{k})
		if ca.hasNew {
			m.dropNew(ca.new, m.a, func(string) {}) // ours' entry loses its name
		}
	default:
		if cb.hasNew {
			m.dropNew(cb.new, m.b, func(k string) { delete(m.muts, k) })
		}
	}
	return nil
}

// dropNew undoes a side's creation of the inode a dirent value names, with everything
// created below it, when that inode is new on that side and loses its only name.
func (m *merger) dropNew(dirent []byte, side *sideDiff, undo func(key string)) {
	ino, _, ok := decodeDirent(dirent)
	if !ok {
		return
	}
	c := side.keys[string(inodeKey(ino))]
	if c == nil || c.hadOld {
		return // not new on that side: it keeps its other links
	}
	for _, k := range side.byIno[ino] {
		undo(k)
		if side == m.a { // ours' copy is in the tree already: delete it
			m.set(k, nil, false)
		}
	}
	p := string(direntPrefix(ino))
	for _, k := range side.dirent {
		if len(k) >= len(p) && k[:len(p)] == p && side.keys[k].hasNew {
			undo(k)
			if side == m.a {
				m.set(k, nil, false)
			}
			m.dropNew(side.keys[k].new, side, undo)
		}
	}
}

// checkOrphans finds entries theirs added under a directory ours deleted.
func (m *merger) checkOrphans() error {
	for _, k := range m.b.dirent {
		mu, ok := m.muts[k]
		if !ok || mu.Delete {
			continue
		}
		parent := keyIno([]byte(k))
		if pm, ok := m.muts[string(inodeKey(parent))]; ok && !pm.Delete {
			continue
		}
		if _, err := m.ours.InodeLocked(m.ctx, parent); err == nil {
			continue
		}
		p := m.pathOf(parent)
		m.conflict(p, ConflictModifyDelete)
		if m.strategyAt(p) == StrategyTheirs {
			if err := m.restoreDir(parent); err != nil {
				return err
			}
			continue
		}
		delete(m.muts, k)
		m.dropNew(m.b.keys[k].new, m.b, func(k string) { delete(m.muts, k) })
	}
	return nil
}

// restoreDir brings back a directory ours deleted (and its deleted ancestors) from theirs.
func (m *merger) restoreDir(ino uint64) error {
	for {
		if pm, ok := m.muts[string(inodeKey(ino))]; ok && !pm.Delete {
			return nil
		}
		if _, err := m.ours.InodeLocked(m.ctx, ino); err == nil {
			return nil
		}
		n, err := m.theirs.InodeLocked(m.ctx, ino)
		if err != nil {
			return err
		}
		m.set(string(inodeKey(ino)), encodeInode(n), true)
		m.set(string(direntKey(n.Parent, n.Name)), encodeDirent(ino, n.Mode), true)
		// The parent gains a subdirectory link back.
		if p, err := m.mergedInode(n.Parent); err == nil {
			p.Nlink++
			m.set(string(inodeKey(p.Ino)), encodeInode(p), true)
		}
		ino = n.Parent
	}
}

func (m *merger) mergedInode(ino uint64) (*Inode, error) {
	if mu, ok := m.muts[string(inodeKey(ino))]; ok {
		if mu.Delete {
			return nil, errors.New("deleted")
		}
		return decodeInode(mu.Value)
	}
	return m.ours.InodeLocked(m.ctx, ino)
}
