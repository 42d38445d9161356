package api

import "context"

// QuotaRequest changes a branch's limits; a nil field leaves that limit as it is, 0 removes it.
type QuotaRequest struct {
	Bytes  *int64 `json:"quota_bytes,omitempty"`
	Inodes *int64 `json:"quota_inodes,omitempty"`
}

func (l *Local) SetQuota(ctx context.Context, name string, r QuotaRequest) (BranchInfo, error) {
	if name == "" {
		return BranchInfo{}, invalidf("branch.quota needs a branch name")
	}
	q, err := l.Engine.GetQuota(name)
	if err != nil {
		return BranchInfo{}, err
	}
	if r.Bytes != nil {
		q.Bytes = *r.Bytes
	}
	if r.Inodes != nil {
		q.Inodes = *r.Inodes
	}
	if q.Bytes < 0 || q.Inodes < 0 {
		return BranchInfo{}, invalidf("a quota cannot be negative")
	}
	if err := l.Engine.SetQuota(ctx, name, q); err != nil {
		return BranchInfo{}, err
	}
	b, err := l.Engine.GetBranch(name)
	if err != nil {
		return BranchInfo{}, err
	}
	info, err := l.branchInfo(ctx, b)
	if err != nil {
		return info, err
	}
	out := []BranchInfo{info}
	err = l.branchSpace(ctx, out)
	return out[0], err
}

func (c *Client) SetQuota(ctx context.Context, name string, q QuotaRequest) (BranchInfo, error) {
	return do[BranchInfo](ctx, c, "branch.quota", Request{Name: name, QuotaBytes: q.Bytes, QuotaInodes: q.Inodes})
}

// quotaInfo fills the quota fields of a branch's info.
func (l *Local) quotaInfo(ctx context.Context, info *BranchInfo) error {
	q, err := l.Engine.GetQuota(info.Name)
	if err != nil {
		return err
	}
	info.QuotaBytes, info.QuotaInodes = q.Bytes, q.Inodes
	if q.Inodes > 0 {
		info.InodesUsed, err = l.Engine.ExclusiveInodes(ctx, info.Name)
	}
	return err
}
