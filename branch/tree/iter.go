package tree

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/agentfs/agentfs/store"
)

// Iter walks the entries of a tree in key order.
type Iter struct {
	t     *Tree
	ctx   context.Context
	stack []frame
	err   error
	key   []byte
	value []byte
	begun bool
}

type frame struct {
	n *node
	i int
}

// NewIter returns an iterator positioned before the first key >= start.
func (t *Tree) NewIter(ctx context.Context, root store.ID, start []byte) *Iter {
	it := &Iter{t: t, ctx: ctx}
	if root.IsZero() {
		return it
	}
	n, err := t.load(ctx, root)
	for err == nil {
		i := search(n.entries, start)
		if n.leaf() {
			it.stack = append(it.stack, frame{n, i})
			break
		}
		if i == len(n.entries) || !bytes.Equal(n.entries[i].key, start) {
			i = max(i-1, 0)
		}
		it.stack = append(it.stack, frame{n, i})
		n, err = t.loadChild(ctx, n, i)
	}
	it.err = err
	return it
}

// Next advances to the next entry and reports whether there is one.
func (it *Iter) Next() bool {
	if it.err != nil {
		return false
	}
	if it.begun && len(it.stack) > 0 {
		it.stack[len(it.stack)-1].i++
	}
	it.begun = true
	for len(it.stack) > 0 {
		top := &it.stack[len(it.stack)-1]
		if top.i >= len(top.n.entries) {
			it.stack = it.stack[:len(it.stack)-1]
			if len(it.stack) > 0 {
				it.stack[len(it.stack)-1].i++
			}
			continue
		}
		if top.n.leaf() {
			e := top.n.entries[top.i]
			it.key, it.value = e.key, e.value
			return true
		}
		child, err := it.t.loadChild(it.ctx, top.n, top.i)
		if err != nil {
			it.err = err
			return false
		}
		it.stack = append(it.stack, frame{child, 0})
	}
	return false
}

// Key and Value are valid until the next call to Next; callers must not modify them.
func (it *Iter) Key() []byte   { return it.key }
func (it *Iter) Value() []byte { return it.value }
func (it *Iter) Err() error    { return it.err }

// Stop ends a Scan or Walk early without error.
var Stop = errors.New("tree: stop")

// Scan calls fn for every entry with start <= key < end (a nil end is unbounded).
func (t *Tree) Scan(ctx context.Context, root store.ID, start, end []byte, fn func(k, v []byte) error) error {
	it := t.NewIter(ctx, root, start)
	for it.Next() {
		if end != nil && bytes.Compare(it.Key(), end) >= 0 {
			break
		}
		if err := fn(it.Key(), it.Value()); err != nil {
			if err == Stop {
				return nil
			}
			return err
		}
	}
	return it.Err()
}

// SkipSubtree, returned by a Walk callback, skips the children of the node just visited.
var SkipSubtree = errors.New("tree: skip subtree")

// Walk visits every node of the tree top-down. fn gets the node's ID, level, and for leaves
// the entries through leaf (nil for internal nodes). GC marks and push use it.
func (t *Tree) Walk(ctx context.Context, root store.ID, fn func(id store.ID, level int, leaf func(yield func(k, v []byte) bool)) error) error {
	if root.IsZero() {
		return nil
	}
	err := t.walk(ctx, root, -1, fn)
	if err == Stop {
		return nil
	}
	return err
}

func (t *Tree) walk(ctx context.Context, id store.ID, level int, fn func(store.ID, int, func(func(k, v []byte) bool)) error) error {
	n, err := t.load(ctx, id)
	if err != nil {
		return err
	}
	if level >= 0 && n.level != level {
		return fmt.Errorf("node %s: %w: level %d under a node of level %d", id, ErrCorruptNode, n.level, level+1)
	}
	var leaf func(func(k, v []byte) bool)
	if n.leaf() {
		leaf = func(yield func(k, v []byte) bool) {
			for _, e := range n.entries {
				if !yield(e.key, e.value) {
					return
				}
			}
		}
	}
	switch err := fn(id, n.level, leaf); err {
	case nil:
	case SkipSubtree:
		return nil
	default:
		return err
	}
	if n.leaf() {
		return nil
	}
	for i := range n.entries {
		if err := t.walk(ctx, n.childID(i), n.level-1, fn); err != nil {
			return err
		}
	}
	return nil
}

// Diff calls fn, in key order, for every key whose value differs between the trees rooted at
// a and b; va is nil where a lacks the key, vb where b lacks it. Subtrees whose ID appears on
// both sides are skipped without being read, so the cost follows the size of the difference
// (times the depth), not the size of the trees.
//
// It works because keys are unique within a tree: a subtree present on both sides holds the
// same entries on both sides, and no other part of either tree can hold those keys.
func (t *Tree) Diff(ctx context.Context, a, b store.ID, fn func(key, va, vb []byte) error) error {
	if a == b {
		return nil
	}
	fa, fb, err := t.expandFrontiers(ctx, a, b)
	if err != nil {
		return err
	}
	ea, eb := leafEntries(fa), leafEntries(fb)
	i, j := 0, 0
	for i < len(ea) || j < len(eb) {
		var c int
		switch {
		case i == len(ea):
			c = 1
		case j == len(eb):
			c = -1
		default:
			c = bytes.Compare(ea[i].key, eb[j].key)
		}
		var err error
		switch {
		case c < 0:
			err = fn(ea[i].key, ea[i].value, nil)
			i++
		case c > 0:
			err = fn(eb[j].key, nil, eb[j].value)
			j++
		default:
			if !bytes.Equal(ea[i].value, eb[j].value) {
				err = fn(ea[i].key, ea[i].value, eb[j].value)
			}
			i++
			j++
		}
		if err == Stop {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// loaded is a frontier subtree; n is loaded only once the subtree survives dropShared.
type loaded struct {
	id    store.ID
	level int
	n     *node
}

// expandFrontiers descends both trees level by level, highest level first, dropping every
// subtree whose ID the other side also holds, until only leaves remain.
func (t *Tree) expandFrontiers(ctx context.Context, a, b store.ID) ([]loaded, []loaded, error) {
	var fa, fb []loaded
	for _, x := range []struct {
		id store.ID
		f  *[]loaded
	}{{a, &fa}, {b, &fb}} {
		if x.id.IsZero() {
			continue
		}
		n, err := t.load(ctx, x.id)
		if err != nil {
			return nil, nil, err
		}
		*x.f = []loaded{{x.id, n.level, n}}
	}
	for {
		fa, fb = dropShared(fa, fb)
		top := -1
		for _, f := range [][]loaded{fa, fb} {
			for i := range f {
				top = max(top, f[i].level)
			}
		}
		if top <= 0 {
			for _, f := range [][]loaded{fa, fb} {
				for i := range f {
					if f[i].n == nil {
						n, err := t.load(ctx, f[i].id)
						if err != nil {
							return nil, nil, err
						}
						if n.level != f[i].level {
							return nil, nil, fmt.Errorf("node %s: %w: level %d where a leaf was expected", f[i].id, ErrCorruptNode, n.level)
						}
						f[i].n = n
					}
				}
			}
			return fa, fb, nil
		}
		var err error
		if fa, err = t.expandLevel(ctx, fa, top); err != nil {
			return nil, nil, err
		}
		if fb, err = t.expandLevel(ctx, fb, top); err != nil {
			return nil, nil, err
		}
	}
}

func dropShared(fa, fb []loaded) ([]loaded, []loaded) {
	in := func(f []loaded) map[store.ID]bool {
		m := make(map[store.ID]bool, len(f))
		for _, l := range f {
			m[l.id] = true
		}
		return m
	}
	ina, inb := in(fa), in(fb)
	keep := func(f []loaded, other map[store.ID]bool) []loaded {
		out := f[:0]
		for _, l := range f {
			if !other[l.id] {
				out = append(out, l)
			}
		}
		return out
	}
	return keep(fa, inb), keep(fb, ina)
}

func (t *Tree) expandLevel(ctx context.Context, f []loaded, level int) ([]loaded, error) {
	out := make([]loaded, 0, len(f))
	for _, l := range f {
		if l.level != level {
			out = append(out, l)
			continue
		}
		n := l.n
		if n == nil {
			var err error
			if n, err = t.load(ctx, l.id); err != nil {
				return nil, err
			}
			if n.level != level {
				return nil, fmt.Errorf("node %s: %w: level %d where %d was expected", l.id, ErrCorruptNode, n.level, level)
			}
		}
		for i := range n.entries {
			out = append(out, loaded{id: n.childID(i), level: level - 1})
		}
	}
	return out, nil
}

func leafEntries(f []loaded) []entry {
	var out []entry
	for _, l := range f {
		out = append(out, l.n.entries...)
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i].key, out[j].key) < 0 })
	return out
}
