package tree

import (
	"bytes"
	"context"
	"fmt"
	"sort"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/agentfs/agentfs/store"
)

// Blocks is the part of the block store a tree needs.
type Blocks interface {
	Put(ctx context.Context, data []byte) (store.ID, error)
	Get(ctx context.Context, id store.ID, buf []byte) ([]byte, error)
}

// Node sizes. A leaf is split once it passes targetSize and a node under minSize is merged
// with a neighbour, so nodes stay between minSize and about 2*targetSize bytes. 16 KiB keeps
// the rewrite per changed key small while a 1M-file tree stays three or four levels deep.
const (
	targetSize = 16 << 10
	minSize    = targetSize / 4
)

// Tree reads and writes trees in a block store. It caches decoded nodes: a node is verified
// by hash when the store reads it and is immutable after that.
type Tree struct {
	blocks Blocks
	cache  *lru.Cache[store.ID, *node]
}

// New returns a Tree over blocks caching up to cacheNodes decoded nodes.
func New(blocks Blocks, cacheNodes int) *Tree {
	if cacheNodes <= 0 {
		cacheNodes = 4096
	}
	c, _ := lru.New[store.ID, *node](cacheNodes)
	return &Tree{blocks: blocks, cache: c}
}

// Mutation sets Key to Value, or deletes Key when Delete is set.
type Mutation struct {
	Key    []byte
	Value  []byte
	Delete bool
}

func (t *Tree) load(ctx context.Context, id store.ID) (*node, error) {
	if n, ok := t.cache.Get(id); ok {
		return n, nil
	}
	data, err := t.blocks.Get(ctx, id, nil)
	if err != nil {
		return nil, err
	}
	n, err := decodeNode(data)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", id, err)
	}
	t.cache.Add(id, n)
	return n, nil
}

// loadChild loads child i of internal node n. A child must sit exactly one level below its
// parent: with levels bounded (decodeNode), every descent ends within 64 steps whatever a
// crafted tree says.
func (t *Tree) loadChild(ctx context.Context, n *node, i int) (*node, error) {
	id := n.childID(i)
	c, err := t.load(ctx, id)
	if err == nil && c.level != n.level-1 {
		return nil, fmt.Errorf("node %s: %w: level %d under a node of level %d", id, ErrCorruptNode, c.level, n.level)
	}
	return c, err
}

// ref is a written node as its parent sees it.
type ref struct {
	first []byte
	id    store.ID
	size  int
}

func (t *Tree) write(ctx context.Context, level int, entries []entry) (ref, error) {
	data := encodeNode(level, entries)
	id, err := t.blocks.Put(ctx, data)
	if err != nil {
		return ref{}, err
	}
	n := &node{level: level, entries: entries, size: len(data)}
	t.cache.Add(id, n)
	return ref{first: entries[0].key, id: id, size: len(data)}, nil
}

// Get returns the value stored under key in the tree rooted at root.
func (t *Tree) Get(ctx context.Context, root store.ID, key []byte) ([]byte, bool, error) {
	if root.IsZero() {
		return nil, false, nil
	}
	n, err := t.load(ctx, root)
	if err != nil {
		return nil, false, err
	}
	for {
		i := search(n.entries, key)
		if n.leaf() {
			if i < len(n.entries) && bytes.Equal(n.entries[i].key, key) {
				return n.entries[i].value, true, nil
			}
			return nil, false, nil
		}
		// Internal: descend into the last child whose first key <= key.
		if i == len(n.entries) || !bytes.Equal(n.entries[i].key, key) {
			i--
		}
		if i < 0 {
			return nil, false, nil
		}
		if n, err = t.loadChild(ctx, n, i); err != nil {
			return nil, false, err
		}
	}
}

// search returns the index of the first entry whose key is >= key.
func search(entries []entry, key []byte) int {
	return sort.Search(len(entries), func(i int) bool { return bytes.Compare(entries[i].key, key) >= 0 })
}

// Apply applies muts, which must be sorted by key without duplicates, to the tree rooted at
// root and returns the new root. The zero ID is the empty tree. Only nodes on the paths to
// the mutated keys are rewritten.
func (t *Tree) Apply(ctx context.Context, root store.ID, muts []Mutation) (store.ID, error) {
	if len(muts) == 0 {
		return root, nil
	}
	for i := 1; i < len(muts); i++ {
		if bytes.Compare(muts[i-1].Key, muts[i].Key) >= 0 {
			return store.ID{}, fmt.Errorf("tree: mutations not sorted at %q", muts[i].Key)
		}
	}
	var refs []ref
	level := 0
	if root.IsZero() {
		entries := mergeLeaf(nil, muts)
		var err error
		if refs, err = t.writeSplit(ctx, 0, entries); err != nil {
			return store.ID{}, err
		}
	} else {
		n, err := t.load(ctx, root)
		if err != nil {
			return store.ID{}, err
		}
		level = n.level
		if refs, err = t.apply(ctx, n, muts); err != nil {
			return store.ID{}, err
		}
	}
	// Grow upwards while a level has several nodes.
	for len(refs) > 1 {
		level++
		entries := make([]entry, len(refs))
		for i, r := range refs {
			entries[i] = entry{key: r.first, value: r.id[:]}
		}
		var err error
		if refs, err = t.writeSplit(ctx, level, entries); err != nil {
			return store.ID{}, err
		}
	}
	if len(refs) == 0 {
		return store.ID{}, nil
	}
	// Shrink downwards while the root has a single child.
	id := refs[0].id
	for {
		n, err := t.load(ctx, id)
		if err != nil {
			return store.ID{}, err
		}
		if n.leaf() || len(n.entries) > 1 {
			return id, nil
		}
		id = n.childID(0)
	}
}

// apply applies muts to the subtree n and returns the nodes that replace it (none if it
// became empty, several if it split).
func (t *Tree) apply(ctx context.Context, n *node, muts []Mutation) ([]ref, error) {
	if n.leaf() {
		return t.writeSplit(ctx, 0, mergeLeaf(n.entries, muts))
	}
	// Group the mutations by the child whose key range holds them.
	out := make([]ref, 0, len(n.entries)+1)
	changed := make([]bool, 0, len(n.entries)+1)
	j := 0
	for i := range n.entries {
		k := j
		for k < len(muts) && (i+1 == len(n.entries) || bytes.Compare(muts[k].Key, n.entries[i+1].key) < 0) {
			k++
		}
		if k == j {
			out = append(out, ref{first: n.entries[i].key, id: n.childID(i), size: minSize})
			changed = append(changed, false)
			continue
		}
		child, err := t.loadChild(ctx, n, i)
		if err != nil {
			return nil, err
		}
		refs, err := t.apply(ctx, child, muts[j:k])
		if err != nil {
			return nil, err
		}
		for _, r := range refs {
			out = append(out, r)
			changed = append(changed, true)
		}
		j = k
	}
	if len(out) == 0 {
		return nil, nil
	}
	out, err := t.mergeSmall(ctx, n.level-1, out, changed)
	if err != nil {
		return nil, err
	}
	entries := make([]entry, len(out))
	for i, r := range out {
		entries[i] = entry{key: r.first, value: r.id[:]}
	}
	return t.writeSplit(ctx, n.level, entries)
}

// mergeSmall merges every rewritten child that fell under minSize with a neighbour, so that
// deletions do not leave a tree of tiny nodes behind. Untouched children are left alone.
func (t *Tree) mergeSmall(ctx context.Context, level int, refs []ref, changed []bool) ([]ref, error) {
	for i := 0; i < len(refs) && len(refs) > 1; i++ {
		if !changed[i] || refs[i].size >= minSize {
			continue
		}
		a, b := i, i+1
		if b == len(refs) {
			a, b = i-1, i
		}
		na, err := t.load(ctx, refs[a].id)
		if err != nil {
			return nil, err
		}
		nb, err := t.load(ctx, refs[b].id)
		if err != nil {
			return nil, err
		}
		joined := make([]entry, 0, len(na.entries)+len(nb.entries))
		joined = append(append(joined, na.entries...), nb.entries...)
		merged, err := t.writeSplit(ctx, level, joined)
		if err != nil {
			return nil, err
		}
		flags := make([]bool, len(merged))
		refs = append(refs[:a], append(merged, refs[b+1:]...)...)
		changed = append(changed[:a], append(flags, changed[b+1:]...)...)
		i = a + len(merged) - 1
	}
	return refs, nil
}

// mergeLeaf returns entries with muts applied; it does not modify entries.
func mergeLeaf(entries []entry, muts []Mutation) []entry {
	out := make([]entry, 0, len(entries)+len(muts))
	i, j := 0, 0
	for i < len(entries) || j < len(muts) {
		var c int
		switch {
		case i == len(entries):
			c = 1
		case j == len(muts):
			c = -1
		default:
			c = bytes.Compare(entries[i].key, muts[j].Key)
		}
		switch {
		case c < 0:
			out = append(out, entries[i])
			i++
		case c > 0:
			if !muts[j].Delete {
				out = append(out, entry{key: bytes.Clone(muts[j].Key), value: bytes.Clone(muts[j].Value)})
			}
			j++
		default:
			if !muts[j].Delete {
				out = append(out, entry{key: entries[i].key, value: bytes.Clone(muts[j].Value)})
			}
			i++
			j++
		}
	}
	return out
}

// writeSplit writes entries as one or more nodes of about targetSize bytes each.
func (t *Tree) writeSplit(ctx context.Context, level int, entries []entry) ([]ref, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	total := 0
	for _, e := range entries {
		total += entrySize(e)
	}
	var refs []ref
	start, size := 0, 0
	for i, e := range entries {
		size += entrySize(e)
		// Cut here if this chunk is full and enough is left for a decent last node.
		if size >= targetSize && total-size >= minSize && i+1 < len(entries) {
			r, err := t.write(ctx, level, entries[start:i+1])
			if err != nil {
				return nil, err
			}
			refs = append(refs, r)
			total -= size
			start, size = i+1, 0
		}
	}
	r, err := t.write(ctx, level, entries[start:])
	if err != nil {
		return nil, err
	}
	return append(refs, r), nil
}
