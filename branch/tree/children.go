package tree

import (
	"context"

	"github.com/agentfs/agentfs/store"
)

// ReadNode loads node id (verified by hash, through the node cache) and calls fn for each
// entry: for a leaf (level 0) its keys and values, for an internal node each child's first
// key and 32-byte child ID. fn returns false to stop. Garbage collection and fsck use it to
// see child IDs before loading them, which Walk does not allow.
func (t *Tree) ReadNode(ctx context.Context, id store.ID, fn func(level int, key, value []byte) bool) error {
	n, err := t.load(ctx, id)
	if err != nil {
		return err
	}
	for _, e := range n.entries {
		if !fn(n.level, e.key, e.value) {
			break
		}
	}
	return nil
}
