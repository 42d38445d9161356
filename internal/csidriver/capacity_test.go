package csidriver

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	csi "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/agentfs/agentfs/api"
)

// A volume's capacity is its branch's byte quota: CreateVolume sets it from the capacity
// range (and the same name with a range it does not fit is AlreadyExists), ListVolumes and
// the volume report it, the quota refuses writes beyond it, NodeGetVolumeStats reports
// total, used and available from it (inodes from an inode quota), and GetCapacity takes
// what quotas promised off the disk's free space.
func TestCapacityFromQuota(t *testing.T) {
	endpoint, d := startDriverWith(t, func(drv *Driver) { drv.space.maxAge = -1 }) // no cached figures
	ctl, node := csi.NewControllerClient(dial(t, endpoint)), csi.NewNodeClient(dial(t, endpoint))
	ctx := context.Background()
	const mib = 1 << 20
	create := func(name string, r *csi.CapacityRange) (*csi.Volume, error) {
		res, err := ctl.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: name, CapacityRange: r, VolumeCapabilities: []*csi.VolumeCapability{rwMount}})
		return res.GetVolume(), err
	}
	v, err := create("sized", &csi.CapacityRange{RequiredBytes: 4 * mib})
	if err != nil || v.CapacityBytes != 4*mib {
		t.Fatalf("CreateVolume of 4 MiB: %v, capacity %d", err, v.GetCapacityBytes())
	}
	if q := quotaOf(t, d.Client, v.VolumeId); q != 4*mib {
		t.Fatalf("the branch's byte quota is %d, want %d", q, 4*mib)
	}
	// The same name again: a range the volume fits is the same volume; others are refused.
	for _, c := range []struct {
		r    *csi.CapacityRange
		code codes.Code
	}{
		{&csi.CapacityRange{RequiredBytes: 4 * mib}, codes.OK},
		{&csi.CapacityRange{RequiredBytes: 2 * mib, LimitBytes: 8 * mib}, codes.OK},
		{nil, codes.OK},
		{&csi.CapacityRange{RequiredBytes: 8 * mib}, codes.AlreadyExists},
		{&csi.CapacityRange{LimitBytes: 1 * mib}, codes.AlreadyExists},
		{&csi.CapacityRange{RequiredBytes: 2 * mib, LimitBytes: mib}, codes.OutOfRange},
		{&csi.CapacityRange{RequiredBytes: -1}, codes.InvalidArgument},
	} {
		again, err := create("sized", c.r)
		if status.Code(err) != c.code || (c.code == codes.OK && again.CapacityBytes != 4*mib) {
			t.Errorf("CreateVolume again with %v: %v (capacity %d), want %v", c.r, err, again.GetCapacityBytes(), c.code)
		}
	}
	if q := quotaOf(t, d.Client, v.VolumeId); q != 4*mib {
		t.Fatalf("the quota changed to %d by refused requests", q)
	}
	lv, err := ctl.ListVolumes(ctx, &csi.ListVolumesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	listed := false
	for _, e := range lv.Entries {
		if e.Volume.VolumeId == v.VolumeId {
			listed = e.Volume.CapacityBytes == 4*mib
		}
	}
	if !listed {
		t.Fatalf("ListVolumes does not give %s a capacity of 4 MiB: %v", v.VolumeId, lv.Entries)
	}

	// Publish, write 1 MiB that does not compress, and read the stats.
	target := filepath.Join(t.TempDir(), "mnt")
	if _, err := node.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: v.VolumeId, TargetPath: target, VolumeCapability: rwMount}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: v.VolumeId, TargetPath: target})
	})
	data := make([]byte, mib)
	rand.Read(data)
	if err := os.WriteFile(filepath.Join(target, "one-mib"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(target, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	inodes := int64(10)
	if _, err := d.Client.SetQuota(ctx, v.VolumeId, api.QuotaRequest{Inodes: &inodes}); err != nil {
		t.Fatal(err)
	}
	stats, err := node.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: v.VolumeId, VolumePath: target})
	if err != nil {
		t.Fatal(err)
	}
	var bytes, files *csi.VolumeUsage
	for _, u := range stats.Usage {
		switch u.Unit {
		case csi.VolumeUsage_BYTES:
			bytes = u
		case csi.VolumeUsage_INODES:
			files = u
		}
	}
	if bytes == nil || bytes.Total != 4*mib || bytes.Used < mib*9/10 || bytes.Used > 2*mib || bytes.Available != bytes.Total-bytes.Used {
		t.Errorf("byte stats %v: want a total of 4 MiB, about 1 MiB used, the rest available", bytes)
	}
	if files == nil || files.Total != inodes || files.Used != 2 || files.Available != inodes-2 {
		t.Errorf("inode stats %v: want 10 in total, 2 used (a file and a directory)", files)
	}

	t.Logf("stats: %v; %v", bytes, files)
	// The quota holds: 4 MiB more do not fit.
	rand.Read(data)
	f, err := os.Create(filepath.Join(target, "too-much"))
	if err != nil {
		t.Fatal(err)
	}
	var werr error
	for i := 0; i < 4 && werr == nil; i++ {
		_, werr = f.Write(data)
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if !errors.Is(werr, syscall.EDQUOT) {
		t.Errorf("writing 4 MiB more into a 4 MiB volume holding 1 MiB: %v, want EDQUOT", werr)
	}

	// GetCapacity: the disk's free space less what quotas promised. A volume promised more
	// than any disk here leaves nothing; another node's topology has nothing.
	free, err := ctl.GetCapacity(ctx, &csi.GetCapacityRequest{})
	if err != nil || free.AvailableCapacity <= 0 {
		t.Fatalf("GetCapacity: %v, %v; want free space", free, err)
	}
	if _, err := create("huge", &csi.CapacityRange{RequiredBytes: 1 << 60}); err != nil {
		t.Fatal(err)
	}
	if c, err := ctl.GetCapacity(ctx, &csi.GetCapacityRequest{}); err != nil || c.AvailableCapacity != 0 {
		t.Fatalf("GetCapacity after a volume of 1 EiB: %v, %v; want 0", c, err)
	}
	if _, err := ctl.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: "huge"}); err != nil {
		t.Fatal(err)
	}
	here, err := ctl.GetCapacity(ctx, &csi.GetCapacityRequest{AccessibleTopology: &csi.Topology{Segments: map[string]string{TopologyKey: "node-1"}}})
	if err != nil || here.AvailableCapacity <= 0 {
		t.Fatalf("GetCapacity on this node after the big volume went: %v, %v; want free space", here, err)
	}
	there, err := ctl.GetCapacity(ctx, &csi.GetCapacityRequest{AccessibleTopology: &csi.Topology{Segments: map[string]string{TopologyKey: "node-2"}}})
	if err != nil || there.AvailableCapacity != 0 {
		t.Fatalf("GetCapacity on another node: %v, %v; want 0", there, err)
	}
}

func quotaOf(t *testing.T, s api.Service, name string) int64 {
	t.Helper()
	bs, err := s.Branches(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		if b.Name == name {
			return b.QuotaBytes
		}
	}
	t.Fatalf("no branch %s", name)
	return 0
}
