package branch

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"path"
	"sort"
	"syscall"

	"github.com/agentfs/agentfs/branch/tree"
	"github.com/agentfs/agentfs/store"
)

// Change is one path that differs between two versions.
type Change struct {
	Path string `json:"path"`
	Kind string `json:"kind"` // "added", "modified" or "deleted"
	Type string `json:"type"` // "file", "dir", "symlink" or "other"
}

// Diff lists the paths that differ between refs a and b. It walks only the parts of the two
// trees that differ (shared subtrees are skipped by ID), then names each changed inode by
// following its parent links, so its cost follows the size of the difference.
//
// A branch's uncommitted changes are folded in memory (or a fold a fork stored is reused):
// a diff writes nothing to the repository.
func (e *Engine) Diff(ctx context.Context, a, b string) ([]Change, error) {
	defer e.op()()
	sides, t, release, err := e.readSides(ctx, a, b)
	if err != nil {
		return nil, err
	}
	defer release()
	// Each side is checked where it differs from the other (parent-link loops, names): a
	// loop that is not in both trees passes through an entry that differs.
	for i := range sides {
		if err := e.checkTreeIn(ctx, t, sides[i].root, sides[1-i].root); err != nil {
			return nil, fmt.Errorf("%s: %w", []string{a, b}[i], err)
		}
	}
	return e.diffRootsIn(ctx, t, sides[0].root, sides[1].root)
}

// DiffRoots is Diff on two tree roots.
func (e *Engine) DiffRoots(ctx context.Context, ra, rb store.ID) ([]Change, error) {
	return e.diffRootsIn(ctx, e.tree, ra, rb)
}

// diffRootsIn is DiffRoots on trees read through t.
func (e *Engine) diffRootsIn(ctx context.Context, t *tree.Tree, ra, rb store.ID) ([]Change, error) {
	pa, pb := newPather(t, ra), newPather(t, rb)
	var out []Change
	changedInodes := map[uint64]bool{}
	add := func(p *pather, parent uint64, name string, typ uint32, kind string) error {
		dir, err := p.path(ctx, parent)
		if err != nil {
			return err
		}
		out = append(out, Change{Path: path.Join(dir, name), Kind: kind, Type: typeName(typ)})
		return nil
	}
	err := t.Diff(ctx, ra, rb, func(k, va, vb []byte) error {
		switch k[0] {
		case kindDirent:
			parent, name := keyIno(k), string(k[9:])
			if checkEntryName(name) != nil {
				return fmt.Errorf("%w: directory %d: entry %q is not a valid file name", ErrDamaged, parent, name)
			}
			_, ta, _ := decodeDirent(va)
			_, tb, _ := decodeDirent(vb)
			switch {
			case va == nil:
				return add(pb, parent, name, tb, "added")
			case vb == nil:
				return add(pa, parent, name, ta, "deleted")
			case ta != tb:
				if err := add(pa, parent, name, ta, "deleted"); err != nil {
					return err
				}
				return add(pb, parent, name, tb, "added")
			default: // the name now holds another inode of the same type
				return add(pb, parent, name, tb, "modified")
			}
		case kindInode:
			if va != nil && vb != nil && inodeContentChanged(va, vb) {
				changedInodes[keyIno(k)] = true
			}
		case kindBlock, kindXattr:
			changedInodes[keyIno(k)] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, c := range out {
		seen[c.Path] = true
	}
	for ino := range changedInodes {
		n, err := pb.inode(ctx, ino)
		if err != nil {
			continue // deleted in b: reported through its dirent
		}
		if _, err := pa.inode(ctx, ino); err != nil {
			continue // new in b: reported through its dirent
		}
		p, err := pb.path(ctx, ino)
		if ino == RootIno {
			p = "." // the root's own mode, owner or xattrs changed
		}
		if err != nil || p == "" || seen[p] {
			continue // unlinked (open orphan) or already listed
		}
		seen[p] = true
		out = append(out, Change{Path: p, Kind: "modified", Type: typeName(n.Mode)})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Kind < out[j].Kind
	})
	return out, nil
}

// inodeContentChanged reports whether two inode records differ in more than times that
// change as a side effect (a directory's mtime when entries change, ctime, atime).
func inodeContentChanged(va, vb []byte) bool {
	a, err1 := decodeInode(va)
	b, err2 := decodeInode(vb)
	if err1 != nil || err2 != nil {
		return true
	}
	if a.Mode != b.Mode || a.Uid != b.Uid || a.Gid != b.Gid || a.Rdev != b.Rdev {
		return true
	}
	if a.IsDir() {
		return false
	}
	return a.Size != b.Size || a.Mtime != b.Mtime || !bytes.Equal(a.Data, b.Data)
}

func typeName(mode uint32) string {
	switch mode & syscall.S_IFMT {
	case syscall.S_IFREG:
		return "file"
	case syscall.S_IFDIR:
		return "dir"
	case syscall.S_IFLNK:
		return "symlink"
	}
	return "other"
}

// pather turns inode numbers into paths within one tree, caching directories.
type pather struct {
	t     *tree.Tree
	root  store.ID
	paths map[uint64]string
}

func newPather(t *tree.Tree, root store.ID) *pather {
	return &pather{t: t, root: root, paths: map[uint64]string{RootIno: ""}}
}

func (p *pather) inode(ctx context.Context, ino uint64) (*Inode, error) {
	v, ok, err := p.t.Get(ctx, p.root, inodeKey(ino))
	return inodeFrom(ino, v, ok, err)
}

// path returns the path of ino ("" for the root). It trusts the inode's parent link only
// after checking that the named entry still points at the inode; a stale link (the named
// hard link was removed) falls back to scanning the directory entries. It walks up
// iteratively: parent links that loop (a damaged or crafted tree) are an error.
func (p *pather) path(ctx context.Context, ino uint64) (string, error) {
	var names []string
	var dirs []uint64 // directories on the way up, to cache their paths
	seen := map[uint64]bool{}
	cur := ino
	base, ok := p.paths[cur]
	for !ok {
		if seen[cur] {
			return "", fmt.Errorf("inode %d: %w: its parent links form a loop", ino, ErrDamaged)
		}
		seen[cur] = true
		n, err := p.inode(ctx, cur)
		if err != nil {
			return "", err
		}
		parent, name := n.Parent, n.Name
		v, found, err := p.t.Get(ctx, p.root, direntKey(parent, name))
		if err != nil {
			return "", err
		}
		if got, _, _ := decodeDirent(v); !found || got != cur {
			if parent, name, err = p.scanFor(ctx, cur); err != nil {
				return "", err
			}
		}
		if checkEntryName(name) != nil {
			return "", fmt.Errorf("inode %d: %w: %q is not a valid file name", cur, ErrDamaged, name)
		}
		names = append(names, name)
		if n.IsDir() {
			dirs = append(dirs, cur)
		} else {
			dirs = append(dirs, 0)
		}
		cur = parent
		base, ok = p.paths[cur]
	}
	// names[i] is the name of the i-th inode on the way up; build paths from the top down.
	s := base
	for i := len(names) - 1; i >= 0; i-- {
		s = path.Join(s, names[i])
		if dirs[i] != 0 {
			p.paths[dirs[i]] = s
		}
	}
	return s, nil
}

func (p *pather) scanFor(ctx context.Context, ino uint64) (uint64, string, error) {
	var parent uint64
	var name string
	want := binary.BigEndian.AppendUint64(nil, ino)
	err := p.t.Scan(ctx, p.root, []byte{kindDirent}, []byte{kindDirent + 1}, func(k, v []byte) error {
		if len(v) == 9 && bytes.Equal(v[:8], want) {
			parent, name = keyIno(k), string(k[9:])
			return tree.Stop
		}
		return nil
	})
	if err == nil && name == "" {
		err = syscall.ENOENT
	}
	return parent, name, err
}
