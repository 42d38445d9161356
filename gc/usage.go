package gc

import (
	"context"

	"github.com/agentfs/agentfs/branch"
)

// BranchUsage counts what a branch holds exclusively, for quotas: the exclusive bytes of
// Space (one walk over the repository) and the inodes it created since its fork point.
func BranchUsage(ctx context.Context, e *branch.Engine, name string) (branch.Usage, error) {
	var u branch.Usage
	q, err := e.GetQuota(name)
	if err != nil {
		return u, err
	}
	if q.Bytes > 0 {
		space, err := Space(ctx, e)
		if err != nil {
			return u, err
		}
		u.Bytes = space[name].Exclusive
	}
	if q.Inodes > 0 {
		if u.Inodes, err = e.ExclusiveInodes(ctx, name); err != nil {
			return u, err
		}
	}
	return u, nil
}
