package gc

import (
	"context"

	"github.com/agentfs/agentfs/branch"
	"github.com/agentfs/agentfs/store"
)

// BranchSpace is the stored (compressed) bytes a branch holds: Exclusive is what only it
// references (what deleting it and running gc would free), Shared what it references
// together with other branches, named checkpoints of other branches, or mounted views.
type BranchSpace struct {
	Shared    int64 `json:"shared_bytes"`
	Exclusive int64 `json:"exclusive_bytes"`
}

// Space returns the space accounting of every branch. A branch holds its base commit with
// its history (pruned checkpoints without their trees), its named checkpoints and its
// working overlay; the overlay's pages (file data written since the last checkpoint, not
// yet blocks) are its alone and count as exclusive. Cost: one walk per branch over what it
// reaches (tree nodes come from the engine's cache; data blocks are not read), one pass
// over the block index, plus one scan of each overlay's pages.
func Space(ctx context.Context, e *branch.Engine) (map[string]BranchSpace, error) {
	db := e.Store().DB()
	snap := db.NewSnapshot()
	defer snap.Close()
	roots, err := e.Roots(snap)
	if err != nil {
		return nil, err
	}
	// Group the roots by branch; roots without a branch form one more group.
	var names []string
	groups := map[string][]branch.Root{}
	for _, r := range roots {
		if _, ok := groups[r.Branch]; !ok {
			names = append(names, r.Branch)
		}
		groups[r.Branch] = append(groups[r.Branch], r)
	}
	uses := map[store.ID]int32{}            // how many groups reach each block
	reach := make([][]store.ID, len(names)) // per group: the blocks it reaches
	for gi, name := range names {
		seen := map[store.ID]struct{}{}
		w := e.NewWalker(snap, nil)
		w.Enter = func(o *branch.Object) bool {
			if _, ok := seen[o.ID]; ok {
				return false
			}
			seen[o.ID] = struct{}{}
			reach[gi] = append(reach[gi], o.ID)
			uses[o.ID]++
			return true
		}
		w.Broken = func(*branch.Object, error) error { return nil } // fsck's business
		for _, r := range groups[name] {
			if err := w.Walk(ctx, r); err != nil {
				return nil, err
			}
		}
	}
	sizes := make(map[store.ID]int64, len(uses))
	if err := e.Store().Blocks(ctx, func(id store.ID, size int64) error {
		if _, ok := uses[id]; ok {
			sizes[id] = size
		}
		return nil
	}); err != nil {
		return nil, err
	}
	out := map[string]BranchSpace{}
	for gi, name := range names {
		if name == "" {
			continue
		}
		var s BranchSpace
		for _, id := range reach[gi] {
			if uses[id] > 1 {
				s.Shared += sizes[id]
			} else {
				s.Exclusive += sizes[id]
			}
		}
		for _, r := range groups[name] {
			if r.Kind != branch.RootOverlay {
				continue
			}
			n, err := e.PageBytes(snap, r.Overlay)
			if err != nil {
				return nil, err
			}
			s.Exclusive += n
		}
		out[name] = s
	}
	return out, nil
}
