package branch

import (
	"context"
	"fmt"
	"sort"

	"github.com/agentfs/agentfs/branch/tree"
	"github.com/agentfs/agentfs/store"
)

// CheckTree checks the tree rooted at root the way a tree that came from a bucket must be
// checked before a branch points at it (clone, pull) or before it is exported or merged:
// every directory entry has a valid name and a well-formed value and does not link the
// root, every inode record decodes within its bounds, and no chain of parent links loops.
// A tree that fails is damaged or crafted; the error wraps ErrDamaged.
//
// With a trusted root (a tree that was checked before or built here) only the entries that
// differ from it are read, so the cost follows the difference: a loop of parent links in
// root must pass through an inode whose record differs from trusted, or trusted would hold
// the same loop. With a zero trusted root every directory entry and inode record is read.
func (e *Engine) CheckTree(ctx context.Context, root, trusted store.ID) error {
	defer e.op()()
	return e.checkTree(ctx, root, trusted)
}

// CheckCommit is CheckTree on the trees of two commits (either may be zero: no commit).
func (e *Engine) CheckCommit(ctx context.Context, commit, trusted store.ID) error {
	if commit.IsZero() {
		return nil
	}
	defer e.op()()
	var roots [2]store.ID
	for i, id := range []store.ID{commit, trusted} {
		if id.IsZero() {
			continue
		}
		c, err := e.ReadCommit(ctx, id)
		if err != nil {
			return err
		}
		roots[i] = c.Root
	}
	return e.checkTree(ctx, roots[0], roots[1])
}

func (e *Engine) checkTree(ctx context.Context, root, trusted store.ID) error {
	return e.checkTreeIn(ctx, e.tree, root, trusted)
}

// checkTreeIn is checkTree on trees read through t (a diff's folded working layers).
func (e *Engine) checkTreeIn(ctx context.Context, t *tree.Tree, root, trusted store.ID) error {
	l := &parentLinks{state: map[uint64]uint8{}}
	visit := func(k, v []byte) error {
		if v == nil || len(k) < 9 {
			return nil // gone from root, or not an entry this check reads
		}
		switch k[0] {
		case kindDirent:
			name := string(k[9:])
			if err := checkEntryName(name); err != nil {
				return fmt.Errorf("%w: directory %d: entry %q is not a valid file name", ErrDamaged, keyIno(k), name)
			}
			child, _, ok := decodeDirent(v)
			if !ok {
				return fmt.Errorf("%w: directory %d: entry %q is malformed", ErrDamaged, keyIno(k), name)
			}
			if child == RootIno {
				return fmt.Errorf("%w: directory %d: entry %q links the root directory", ErrDamaged, keyIno(k), name)
			}
		case kindInode:
			n, err := decodeInode(v)
			if err != nil || len(k) != 9 {
				return fmt.Errorf("%w: inode %d: %v", ErrDamaged, keyIno(k), err)
			}
			l.inos = append(l.inos, keyIno(k))
			l.parents = append(l.parents, n.Parent)
		}
		return nil
	}
	if trusted.IsZero() {
		for _, kind := range []byte{kindDirent, kindInode} {
			if err := t.Scan(ctx, root, []byte{kind}, []byte{kind + 1}, visit); err != nil {
				return err
			}
		}
	} else {
		if err := t.Diff(ctx, trusted, root, func(k, _, v []byte) error { return visit(k, v) }); err != nil {
			return err
		}
		l.get = func(ino uint64) (uint64, bool, error) {
			v, ok, err := t.Get(ctx, root, inodeKey(ino))
			if err != nil || !ok {
				return 0, false, err
			}
			n, err := decodeInode(v)
			if err != nil {
				return 0, false, fmt.Errorf("%w: inode %d: %v", ErrDamaged, ino, err)
			}
			return n.Parent, true, nil
		}
	}
	return l.check()
}

// parentLinks holds the parent link of each inode record read (sorted by inode number, as
// the tree keeps them) and, when set, looks up the others in the tree.
type parentLinks struct {
	inos, parents []uint64
	get           func(ino uint64) (parent uint64, ok bool, err error)
	state         map[uint64]uint8 // 1: on the walk under way; 2: reaches the root or an unlinked inode
}

func (l *parentLinks) parent(ino uint64) (uint64, bool, error) {
	i := sort.Search(len(l.inos), func(i int) bool { return l.inos[i] >= ino })
	if i < len(l.inos) && l.inos[i] == ino {
		return l.parents[i], true, nil
	}
	if l.get == nil {
		return 0, false, nil
	}
	return l.get(ino)
}

// check walks up from every inode read, iteratively; an inode whose parent is missing is an
// unlinked file kept open when the tree was committed, which is allowed.
func (l *parentLinks) check() error {
	var walk []uint64
	for _, start := range l.inos {
		walk = walk[:0]
		for cur := start; cur != RootIno && l.state[cur] != 2; {
			if l.state[cur] == 1 {
				return fmt.Errorf("%w: inode %d: its parent links form a loop", ErrDamaged, start)
			}
			p, ok, err := l.parent(cur)
			if err != nil {
				return err
			}
			if !ok {
				break
			}
			l.state[cur] = 1
			walk = append(walk, cur)
			cur = p
		}
		for _, ino := range walk {
			l.state[ino] = 2
		}
	}
	return nil
}
