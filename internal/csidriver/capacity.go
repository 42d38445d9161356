package csidriver

import (
	"context"
	"sync"
	"time"

	csi "github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/agentfs/agentfs/api"
)

// Capacity comes from branch quotas (agentfs branch quota). A volume's capacity is its
// branch's byte quota: what the branch may hold beyond what it shares with other versions
// (a clone starts at 0 used, whatever the size of its tree). Volumes without a capacity
// have no quota and share the repository's disk.
//
// The figures need the space of every branch, one walk over the repository (gc.Space);
// they are kept for spaceMaxAge, so that the kubelet asking for the stats of every volume
// in turn costs one walk, not one per volume.
const spaceMaxAge = 10 * time.Second

// spaceCache keeps the last answer of Daemon.Branches.
type spaceCache struct {
	mu     sync.Mutex
	at     time.Time
	infos  []api.BranchInfo
	maxAge time.Duration // 0: spaceMaxAge; negative: always ask
}

func (d *Driver) branchSpace(ctx context.Context) ([]api.BranchInfo, error) {
	c := &d.space
	c.mu.Lock()
	defer c.mu.Unlock()
	maxAge := c.maxAge
	if maxAge == 0 {
		maxAge = spaceMaxAge
	}
	if c.infos != nil && time.Since(c.at) < maxAge {
		return c.infos, nil
	}
	infos, err := d.Daemon.Branches(ctx, api.ListOptions{Space: true}) // the exclusive bytes
	if err != nil {
		return nil, err
	}
	c.infos, c.at = infos, time.Now()
	return infos, nil
}

// forget drops the cached space (a quota changed).
func (d *Driver) forgetSpace() {
	d.space.mu.Lock()
	d.space.infos = nil
	d.space.mu.Unlock()
}

// wantedQuota is the byte quota a capacity range asks for: its required bytes, else its
// limit, else none (0).
func wantedQuota(r *csi.CapacityRange) (int64, error) {
	req, lim := r.GetRequiredBytes(), r.GetLimitBytes()
	switch {
	case req < 0 || lim < 0:
		return 0, status.Error(codes.InvalidArgument, "capacity range: bytes cannot be negative")
	case lim > 0 && req > lim:
		return 0, status.Errorf(codes.OutOfRange, "capacity range: required %d bytes is over the limit of %d", req, lim)
	case req > 0:
		return req, nil
	}
	return lim, nil
}

// fits reports whether a volume whose quota is q (0: none, unlimited) satisfies r.
func fits(q int64, r *csi.CapacityRange) bool {
	if q == 0 {
		return r.GetLimitBytes() == 0
	}
	return q >= r.GetRequiredBytes() && (r.GetLimitBytes() == 0 || q <= r.GetLimitBytes())
}

// setCapacity gives volume id the quota r asks for and returns its capacity. For a volume
// that existed already (the same CreateVolume again), a quota it has must fit r (else
// AlreadyExists, as CSI asks); one without a quota gets it, which also completes a
// CreateVolume interrupted between making the branch and setting its quota.
func (d *Driver) setCapacity(ctx context.Context, id string, r *csi.CapacityRange, existed bool) (int64, error) {
	want, err := wantedQuota(r)
	if err != nil {
		return 0, err
	}
	if existed {
		d.forgetSpace()
		infos, err := d.branchSpace(ctx)
		if err != nil {
			return 0, grpcError(err)
		}
		var have int64
		for _, b := range infos {
			if b.Name == id {
				have = b.QuotaBytes
			}
		}
		if have != 0 || want == 0 {
			if !fits(have, r) {
				return 0, status.Errorf(codes.AlreadyExists, "volume %s exists already with a capacity of %d bytes, outside the range asked for", id, have)
			}
			return have, nil
		}
	}
	if want == 0 {
		return 0, nil
	}
	if _, err := d.Daemon.SetQuota(ctx, id, api.QuotaRequest{Bytes: &want}); err != nil {
		return 0, grpcError(err)
	}
	d.forgetSpace()
	return want, nil
}

// GetCapacity reports the free space of the disk holding the repository, less what the
// byte quotas of volumes have promised and not yet used.
func (d *Driver) GetCapacity(ctx context.Context, req *csi.GetCapacityRequest) (*csi.GetCapacityResponse, error) {
	if err := CheckParameters(req.GetParameters()); err != nil {
		return nil, err
	}
	if t := req.GetAccessibleTopology(); t != nil {
		if n, ok := t.GetSegments()[TopologyKey]; ok && n != d.NodeID {
			return &csi.GetCapacityResponse{}, nil // another node's repository
		}
	}
	if d.RepoDir == "" {
		return nil, status.Error(codes.FailedPrecondition, "the driver does not know the repository's directory")
	}
	var st unix.Statfs_t
	if err := unix.Statfs(d.RepoDir, &st); err != nil {
		return nil, status.Errorf(codes.Internal, "statfs %s: %v", d.RepoDir, err)
	}
	infos, err := d.branchSpace(ctx)
	if err != nil {
		return nil, grpcError(err)
	}
	avail := int64(st.Bavail) * int64(st.Bsize)
	for _, b := range infos {
		if used := exclusive(b); b.QuotaBytes > used {
			avail -= b.QuotaBytes - used
		}
	}
	return &csi.GetCapacityResponse{AvailableCapacity: max(avail, 0)}, nil
}

// quotaStats replaces the disk's figures in stats (bytes, then inodes) with the quotas of
// volume id where it has them.
func (d *Driver) quotaStats(ctx context.Context, id string, stats []*csi.VolumeUsage) error {
	infos, err := d.branchSpace(ctx)
	if err != nil {
		return err
	}
	for _, b := range infos {
		if b.Name != id {
			continue
		}
		if b.QuotaBytes > 0 {
			used := exclusive(b)
			stats[0] = &csi.VolumeUsage{Unit: csi.VolumeUsage_BYTES, Total: b.QuotaBytes, Used: used, Available: max(b.QuotaBytes-used, 0)}
		}
		if b.QuotaInodes > 0 {
			stats[1] = &csi.VolumeUsage{Unit: csi.VolumeUsage_INODES, Total: b.QuotaInodes, Used: b.InodesUsed, Available: max(b.QuotaInodes-b.InodesUsed, 0)}
		}
	}
	return nil
}

// exclusive is what only branch b holds (0 when the space was not counted).
func exclusive(b api.BranchInfo) int64 {
	if b.ExclusiveBytes == nil {
		return 0
	}
	return *b.ExclusiveBytes
}
