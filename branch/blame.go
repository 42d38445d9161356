package branch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/agentfs/agentfs/internal/gitdiff"
	"github.com/agentfs/agentfs/store"
)

// BlameLine names the checkpoint that last changed one line of a file (for a binary file,
// the file as a whole is one line).
type BlameLine struct {
	Line   int      // 1-based line number in the blamed version
	Text   string   // the line, with its newline
	ID     store.ID // the checkpoint; zero: the branch's uncommitted changes
	Commit *Commit
}

// BlameResult is a file's blame.
type BlameResult struct {
	Path   string
	Binary bool
	Lines  []BlameLine
}

// blameVersion is one version of the file, in one commit, with the lines still to attribute.
type blameVersion struct {
	id      store.ID
	c       *Commit
	root    store.ID
	n       *Inode
	path    string
	lines   []string
	pending map[int]int // line index in this version -> index in the blamed version
}

// Blame attributes every line of the file at path in ref to the checkpoint that last changed
// it, walking the history from ref newest first. Lines pass from a version to its parent
// when the parent has the same line at the matching place (a line diff); a line no parent
// has is the version's own. A parent's copy of the file is found by inode number (so
// renames are followed), else by path. An unchanged file is passed on without reading it,
// so the cost follows the history of the path, not the size of the tree.
func (e *Engine) Blame(ctx context.Context, ref, p string) (*BlameResult, error) {
	defer e.op()()
	r, err := e.Resolve(ctx, ref)
	if err != nil {
		return nil, err
	}
	start := &blameVersion{id: r.Commit, path: p}
	if r.Branch != "" {
		// The working state counts as a version of its own, "uncommitted".
		if start.root, err = e.rootOf(ctx, r); err != nil {
			return nil, err
		}
		start.id = store.ID{}
		start.c = &Commit{Parents: []store.ID{r.Commit}, Time: e.now().UTC(), Branch: r.Branch, Message: "uncommitted changes"}
	} else {
		if start.c, err = e.ReadCommit(ctx, r.Commit); err != nil {
			return nil, err
		}
		start.root = start.c.Root
	}
	v := newView(e, start.root)
	if start.n, err = lookupPath(ctx, v, p); err != nil {
		return nil, fmt.Errorf("%s:%s: %w", ref, p, ErrNotFound)
	}
	if !start.n.IsRegular() && !start.n.IsSymlink() {
		return nil, fmt.Errorf("%w: %s:%s is not a file", ErrInvalidName, ref, p)
	}
	res := &BlameResult{Path: p}
	data, bin, err := content(ctx, v, start.n)
	if err != nil {
		return nil, err
	}
	res.Binary = bin
	start.lines = blameLines(data, bin)
	res.Lines = make([]BlameLine, len(start.lines))
	start.pending = map[int]int{}
	for i, l := range start.lines {
		res.Lines[i] = BlameLine{Line: i + 1, Text: l}
		start.pending[i] = i
	}
	queue := map[store.ID]*blameVersion{start.id: start}
	for len(queue) > 0 {
		x := newest(queue)
		delete(queue, x.id)
		if err := e.blameStep(ctx, x, queue, res, bin); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func blameLines(data []byte, bin bool) []string {
	if bin {
		return []string{string(data)}
	}
	return gitdiff.Lines(data)
}

func newest(q map[store.ID]*blameVersion) *blameVersion {
	var best *blameVersion
	for _, v := range q {
		if best == nil || v.c.Time.After(best.c.Time) || v.c.Time.Equal(best.c.Time) && bytes.Compare(v.id[:], best.id[:]) < 0 {
			best = v
		}
	}
	return best
}

// blameStep passes x's pending lines to its parents and attributes the rest to x.
func (e *Engine) blameStep(ctx context.Context, x *blameVersion, queue map[store.ID]*blameVersion, res *BlameResult, bin bool) error {
	for _, pid := range x.c.Parents {
		if len(x.pending) == 0 {
			break
		}
		pc, err := e.ReadCommit(ctx, pid)
		if errors.Is(err, store.ErrNotFound) {
			continue // history before a pruned checkpoint: the lines stay here
		}
		if err != nil {
			return err
		}
		if ok, _ := e.IsPruned(pid); ok {
			continue
		}
		pv := newView(e, pc.Root)
		pn, ppath, err := e.findFile(ctx, pv, pc.Root, x.n, x.path)
		if err != nil {
			return err
		}
		if pn == nil {
			continue
		}
		y := queue[pid]
		if y == nil {
			y = &blameVersion{id: pid, c: pc, root: pc.Root, n: pn, path: ppath, pending: map[int]int{}}
		}
		same, err := e.sameFile(ctx, x, pv, pn)
		if err != nil {
			return err
		}
		if same && y.lines == nil {
			y.lines = x.lines
		}
		if y.lines == nil {
			data, pbin, err := content(ctx, pv, pn)
			if err != nil {
				return err
			}
			y.lines = blameLines(data, bin || pbin)
		}
		// Lines of x matched in the parent move there.
		match := make(map[int]int, len(x.lines))
		if same {
			for i := range x.lines {
				match[i] = i
			}
		} else {
			edits := gitdiff.Diff(y.lines, x.lines)
			pi, xi := 0, 0
			for _, ed := range append(edits, gitdiff.Edit{Start: len(y.lines), End: len(y.lines), NewStart: len(x.lines), NewEnd: len(x.lines)}) {
				for pi < ed.Start && xi < ed.NewStart {
					match[xi] = pi
					pi, xi = pi+1, xi+1
				}
				pi, xi = ed.End, ed.NewEnd
			}
		}
		moved := false
		for i, final := range x.pending {
			if j, ok := match[i]; ok {
				y.pending[j] = final
				delete(x.pending, i)
				moved = true
			}
		}
		if moved {
			queue[pid] = y
		}
	}
	for _, final := range x.pending {
		res.Lines[final].ID, res.Lines[final].Commit = x.id, x.c
	}
	return nil
}

// findFile returns the parent's version of file n (at path p in the child): the same inode
// if the parent has it (renames are followed), else whatever file is at p.
func (e *Engine) findFile(ctx context.Context, pv *Workspace, root store.ID, n *Inode, p string) (*Inode, string, error) {
	if pn, err := pv.InodeLocked(ctx, n.Ino); err == nil && (pn.IsRegular() || pn.IsSymlink()) {
		pp, err := newPather(e.tree, root).path(ctx, n.Ino)
		if err == nil {
			return pn, pp, nil
		}
	}
	pn, err := lookupPath(ctx, pv, p)
	if err != nil || !(pn.IsRegular() || pn.IsSymlink()) {
		return nil, "", nil
	}
	return pn, p, nil
}

// sameFile reports, without reading content, whether the parent's file pn is stored the
// same as x's: the same inline data, or the same block references.
func (e *Engine) sameFile(ctx context.Context, x *blameVersion, pv *Workspace, pn *Inode) (bool, error) {
	a, b := x.n, pn
	if a.Size != b.Size || a.Inline != b.Inline || a.Mode&0o170000 != b.Mode&0o170000 {
		return false, nil
	}
	if a.Inline || a.IsSymlink() {
		return bytes.Equal(a.Data, b.Data), nil
	}
	xv := newView(e, x.root)
	var refs [2][]string
	for i, side := range []struct {
		v   *Workspace
		ino uint64
	}{{xv, a.Ino}, {pv, b.Ino}} {
		pre := blockPrefix(side.ino)
		if err := side.v.ScanLocked(ctx, pre, prefixEnd(pre), func(k, v []byte) error {
			refs[i] = append(refs[i], string(k[9:])+string(v))
			return nil
		}); err != nil {
			return false, err
		}
	}
	return slices.Equal(refs[0], refs[1]), nil
}
