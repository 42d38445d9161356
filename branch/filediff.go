package branch

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/agentfs/agentfs/branch/tree"
	"github.com/agentfs/agentfs/internal/diff3"
	"github.com/agentfs/agentfs/internal/gitdiff"
)

// FileDiff is one path's change with its content: what `agentfs diff --patch/--stat/--json`
// shows.
type FileDiff struct {
	Path    string `json:"path"`
	OldPath string `json:"old_path,omitempty"` // the path in the first ref, for a rename
	Kind    string `json:"kind"`               // added, modified, deleted or renamed
	Type    string `json:"type"`               // file, dir, symlink or other
	OldMode string `json:"old_mode,omitempty"` // octal st_mode on each side, e.g. "100644"
	NewMode string `json:"new_mode,omitempty"`
	Binary  bool   `json:"binary,omitempty"` // content not shown line by line
	Added   int    `json:"added"`            // lines added and deleted (text files)
	Deleted int    `json:"deleted"`
	Patch   string `json:"patch,omitempty"` // the git-style diff of this path (files only)
}

// DiffOptions select what DiffFiles computes.
type DiffOptions struct {
	Paths   []string // only these paths and what is below them; none: all
	Context int      // context lines of the patch; 0 = 3
	Patch   bool     // fill FileDiff.Patch
	Names   bool     // names, kinds and modes only: read no file content (no line counts)
}

// maxDiffSize is the largest file whose lines are compared; larger files are marked binary.
const maxDiffSize = 64 << 20

// DiffFiles compares refs a and b file by file. It starts from Diff's list of changed paths
// (which skips shared subtrees) and reads only the files on it, so its cost follows what
// differs. Renames are found by inode identity: a name removed and a name added for the
// same file (a renamed directory lists every file below it as renamed).
func (e *Engine) DiffFiles(ctx context.Context, a, b string, o DiffOptions) ([]FileDiff, error) {
	defer e.op()()
	sides, t, release, err := e.readSides(ctx, a, b)
	if err != nil {
		return nil, err
	}
	defer release()
	return e.diffFilesIn(ctx, t, sides[0], sides[1], o)
}

// side is one path on one side of a diff.
type side struct {
	path string
	n    *Inode
}

func (e *Engine) diffFilesIn(ctx context.Context, t *tree.Tree, a, b readSide, o DiffOptions) ([]FileDiff, error) {
	if o.Context <= 0 {
		o.Context = 3
	}
	changes, err := e.diffRootsIn(ctx, t, a.root, b.root)
	if err != nil {
		return nil, err
	}
	va, vb := a.view, b.view
	pa := newPather(t, a.root)
	var dels, adds []side
	mods := map[string][2]*Inode{}
	for _, c := range changes {
		switch c.Kind {
		case "deleted":
			n, err := lookupPath(ctx, va, c.Path)
			if err != nil {
				return nil, err
			}
			dels = append(dels, side{c.Path, n})
		case "added":
			n, err := lookupPath(ctx, vb, c.Path)
			if err != nil {
				return nil, err
			}
			adds = append(adds, side{c.Path, n})
		default:
			y, err := lookupPath(ctx, vb, c.Path)
			if err != nil {
				return nil, err
			}
			x, err := lookupPath(ctx, va, c.Path)
			if err != nil {
				// Below a renamed directory: the same file under its old name, or a new
				// file that replaced one there.
				if x, err = va.InodeLocked(ctx, y.Ino); err != nil {
					adds = append(adds, side{c.Path, y})
					continue
				}
			}
			mods[c.Path] = [2]*Inode{x, y}
		}
	}
	// Renames: the same inode lost a name and gained one.
	delByIno := map[uint64]int{}
	for i, d := range dels {
		delByIno[d.n.Ino] = i
	}
	type pair struct{ from, to side }
	var renames []pair
	usedDel := map[int]bool{}
	var plainAdds []side
	for _, ad := range adds {
		i, ok := delByIno[ad.n.Ino]
		if !ok || usedDel[i] {
			plainAdds = append(plainAdds, ad)
			continue
		}
		usedDel[i] = true
		from := dels[i]
		renames = append(renames, pair{from, ad})
		if !ad.n.IsDir() {
			continue
		}
		// Everything below a renamed directory moved with it.
		err := walkTree(ctx, vb, ad.n.Ino, ad.path, func(p string, n *Inode) error {
			x, err := va.InodeLocked(ctx, n.Ino)
			if err != nil {
				return nil // new below the renamed directory: listed as added
			}
			old, err := pa.path(ctx, n.Ino)
			if err != nil || old == p {
				return nil
			}
			delete(mods, p) // listed once, as a rename with its changes
			renames = append(renames, pair{side{old, x}, side{p, n}})
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	var out []FileDiff
	keep := func(paths ...string) bool {
		if len(o.Paths) == 0 {
			return true
		}
		for _, p := range paths {
			for _, want := range o.Paths {
				want = strings.Trim(path.Clean("/"+want), "/")
				if want == "" || p == want || strings.HasPrefix(p, want+"/") {
					return true
				}
			}
		}
		return false
	}
	emit := func(kind string, from, to side) error {
		if !keep(from.path, to.path) {
			return nil
		}
		fd, err := e.fileDiff(ctx, va, vb, kind, from, to, o)
		if err != nil {
			return err
		}
		out = append(out, fd)
		return nil
	}
	for i, d := range dels {
		if !usedDel[i] {
			if err := emit("deleted", d, side{}); err != nil {
				return nil, err
			}
		}
	}
	for _, ad := range plainAdds {
		if err := emit("added", side{}, ad); err != nil {
			return nil, err
		}
	}
	for _, r := range renames {
		if err := emit("renamed", r.from, r.to); err != nil {
			return nil, err
		}
	}
	for p, m := range mods {
		if err := emit("modified", side{p, m[0]}, side{p, m[1]}); err != nil {
			return nil, err
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Kind < out[j].Kind
	})
	return out, nil
}

// fileDiff fills in one path's change; from or to is empty for an added or deleted path.
func (e *Engine) fileDiff(ctx context.Context, va, vb *Workspace, kind string, from, to side, o DiffOptions) (FileDiff, error) {
	fd := FileDiff{Path: to.path, Kind: kind}
	f := gitdiff.File{OldPath: from.path, NewPath: to.path}
	var typed *Inode
	if from.n != nil {
		typed = from.n
		fd.OldMode = fmt.Sprintf("%o", from.n.Mode)
		f.OldMode = from.n.Mode
	}
	if to.n != nil {
		typed = to.n
		fd.NewMode = fmt.Sprintf("%o", to.n.Mode)
		f.NewMode = to.n.Mode
	} else {
		fd.Path = from.path
	}
	if kind == "renamed" {
		fd.OldPath = from.path
	}
	fd.Type = typeName(typed.Mode)
	if o.Names || typed.IsDir() || (!typed.IsRegular() && !typed.IsSymlink()) {
		return fd, nil // git has no way to say it; the listing does
	}
	if from.n != nil && to.n != nil && from.n.Mode&0o170000 != to.n.Mode&0o170000 {
		// A file replaced by a symlink (or the reverse): git shows a deletion and an addition.
		a, err := e.fileDiff(ctx, va, vb, "deleted", from, side{}, o)
		if err != nil {
			return fd, err
		}
		b, err := e.fileDiff(ctx, va, vb, "added", side{}, to, o)
		fd.Added, fd.Deleted, fd.Binary, fd.Patch = b.Added, a.Deleted, a.Binary || b.Binary, a.Patch+b.Patch
		return fd, err
	}
	var err error
	if f.Old, fd.Binary, err = content(ctx, va, from.n); err != nil {
		return fd, err
	}
	var bin bool
	if f.New, bin, err = content(ctx, vb, to.n); err != nil {
		return fd, err
	}
	fd.Binary = fd.Binary || bin
	f.Binary = fd.Binary
	var sb strings.Builder
	fd.Added, fd.Deleted = gitdiff.Write(&sb, f, o.Context)
	if o.Patch {
		fd.Patch = sb.String()
	}
	return fd, nil
}

// content reads a file's bytes (a symlink's target), and whether it is binary: not text, or
// too large to compare line by line (then it is not read).
func content(ctx context.Context, v *Workspace, n *Inode) ([]byte, bool, error) {
	if n == nil {
		return nil, false, nil
	}
	if n.IsSymlink() {
		return n.Data, false, nil
	}
	if n.Size > maxDiffSize {
		return nil, true, nil
	}
	buf := make([]byte, n.Size)
	if _, err := v.Read(ctx, n.Ino, 0, buf); err != nil {
		return nil, false, err
	}
	return buf, !diff3.IsText(buf), nil
}

// lookupPath returns the inode at a slash-separated path of a view ("." or "" is the root).
func lookupPath(ctx context.Context, v *Workspace, p string) (*Inode, error) {
	ino := uint64(RootIno)
	for _, part := range strings.Split(p, "/") {
		if part == "" || part == "." {
			continue
		}
		val, ok, err := v.GetLocked(ctx, direntKey(ino, part))
		if err != nil {
			return nil, err
		}
		child, _, okd := decodeDirent(val)
		if !ok || !okd {
			return nil, fmt.Errorf("%s: %w", p, ErrNotFound)
		}
		ino = child
	}
	return v.InodeLocked(ctx, ino)
}

// walkTree calls fn for every entry below directory dir (named p), depth first.
func walkTree(ctx context.Context, v *Workspace, dir uint64, p string, fn func(p string, n *Inode) error) error {
	return walkTreeOnce(ctx, v, dir, p, fn, map[uint64]bool{dir: true})
}

// walkTreeOnce is walkTree refusing a directory reached twice (a loop in a damaged or
// crafted tree) and names that are not one path component.
func walkTreeOnce(ctx context.Context, v *Workspace, dir uint64, p string, fn func(p string, n *Inode) error, seen map[uint64]bool) error {
	var children []DirEntry
	pre := direntPrefix(dir)
	if err := v.ScanLocked(ctx, pre, prefixEnd(pre), func(k, val []byte) error {
		ino, typ, ok := decodeDirent(val)
		if ok {
			children = append(children, DirEntry{Name: string(k[len(pre):]), Ino: ino, Mode: typ})
		}
		return nil
	}); err != nil {
		return err
	}
	for _, c := range children {
		if checkEntryName(c.Name) != nil {
			return fmt.Errorf("directory %d: %w: %q is not a valid file name", dir, ErrDamaged, c.Name)
		}
		n, err := v.InodeLocked(ctx, c.Ino)
		if err != nil {
			return err
		}
		cp := path.Join(p, c.Name)
		if err := fn(cp, n); err != nil {
			return err
		}
		if n.IsDir() {
			if seen[c.Ino] {
				return fmt.Errorf("%s: %w: directory inode %d is reached twice", cp, ErrDamaged, c.Ino)
			}
			seen[c.Ino] = true
			if err := walkTreeOnce(ctx, v, c.Ino, cp, fn, seen); err != nil {
				return err
			}
		}
	}
	return nil
}
