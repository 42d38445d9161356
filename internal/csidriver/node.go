package csidriver

import (
	"context"
	"errors"
	"os"
	"path/filepath"

	csi "github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/agentfs/agentfs/api"
)

func (d *Driver) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	return &csi.NodeGetCapabilitiesResponse{Capabilities: []*csi.NodeServiceCapability{{
		Type: &csi.NodeServiceCapability_Rpc{Rpc: &csi.NodeServiceCapability_RPC{Type: csi.NodeServiceCapability_RPC_GET_VOLUME_STATS}},
	}}}, nil
}

func (d *Driver) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	if d.NodeID == "" {
		return nil, status.Error(codes.FailedPrecondition, "the driver was started without --node-id")
	}
	return &csi.NodeGetInfoResponse{NodeId: d.NodeID, AccessibleTopology: d.topology()[0]}, nil
}

// realPath is how the daemon names a mount directory (absolute, symlinks resolved).
func realPath(p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		return r
	}
	return abs
}

// mountAt checks the volume id and path of a node call (what names the path in errors)
// and returns the daemon's mount at the path, if any.
func (d *Driver) mountAt(ctx context.Context, id, path, what string) (*api.MountInfo, error) {
	switch {
	case id == "":
		return nil, status.Error(codes.InvalidArgument, "volume id is missing")
	case path == "":
		return nil, status.Errorf(codes.InvalidArgument, "%s is missing", what)
	}
	ms, err := d.Daemon.Mounts(ctx)
	if err != nil {
		return nil, grpcError(err)
	}
	dir := realPath(path)
	for _, m := range ms {
		if m.Dir == dir {
			return &m, nil
		}
	}
	return nil, nil
}

// NodePublishVolume has the daemon mount the volume's branch at the target path:
// read-write, or read-only for a snapshot, a read-only access mode or a read-only publish.
func (d *Driver) NodePublishVolume(ctx context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	id, target := req.GetVolumeId(), req.GetTargetPath()
	m, err := d.mountAt(ctx, id, target, "target path")
	if err != nil {
		return nil, err
	}
	if req.GetVolumeCapability() == nil {
		return nil, status.Error(codes.InvalidArgument, "volume capability is missing")
	}
	if err := checkCapabilities([]*csi.VolumeCapability{req.GetVolumeCapability()}); err != nil {
		return nil, err
	}
	readOnly := req.GetReadonly() || isSnapshot(id) ||
		req.GetVolumeCapability().GetAccessMode().GetMode() == csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY
	if err := api.MakeMountPoint(target); err != nil {
		return nil, status.Errorf(codes.Internal, "create the target path: %v", err)
	}
	if m != nil {
		if m.Ref == id && m.ReadOnly == readOnly {
			return &csi.NodePublishVolumeResponse{}, nil // published already (CSI idempotency)
		}
		return nil, status.Errorf(codes.AlreadyExists, "%s already holds %s (read-only %v)", target, m.Ref, m.ReadOnly)
	}
	// AllowOther: the pod's containers run as any uid; the target lies under the kubelet's
	// directory, which only root can traverse, so the mount is reached only through the pod.
	o := api.MountOptions{ReadOnly: readOnly, AllowOther: true, Owner: req.GetVolumeContext()[ParamOwner]}
	if _, err := d.Daemon.Mount(ctx, id, target, o); err != nil {
		if _, lerr := d.Daemon.Log(ctx, id); lerr != nil {
			return nil, grpcError(lerr) // no such volume: NotFound
		}
		return nil, status.Errorf(codes.FailedPrecondition, "mount %s at %s: %v", id, target, err)
	}
	return &csi.NodePublishVolumeResponse{}, nil
}

// NodeUnpublishVolume unmounts the target path and removes it.
func (d *Driver) NodeUnpublishVolume(ctx context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	target := req.GetTargetPath()
	m, err := d.mountAt(ctx, req.GetVolumeId(), target, "target path")
	if err != nil {
		return nil, err
	}
	if m != nil {
		if err := d.Daemon.Unmount(ctx, target); err != nil {
			return nil, status.Errorf(codes.Internal, "unmount %s: %v", target, err)
		}
	} else if api.ClearStaleMount(target) {
		d.logf("detached %s: its daemon had stopped", target)
	}
	if err := os.Remove(target); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, status.Errorf(codes.Internal, "remove the target path: %v", err)
	}
	return &csi.NodeUnpublishVolumeResponse{}, nil
}

// NodeGetVolumeStats reports the volume's quotas (capacity.go): total, used and available
// bytes and inodes; where it has none, the space and inodes of the filesystem holding the
// repository, as the mount's statfs does.
func (d *Driver) NodeGetVolumeStats(ctx context.Context, req *csi.NodeGetVolumeStatsRequest) (*csi.NodeGetVolumeStatsResponse, error) {
	id, path := req.GetVolumeId(), req.GetVolumePath()
	m, err := d.mountAt(ctx, id, path, "volume path")
	if err != nil {
		return nil, err
	}
	if m == nil || m.Ref != id {
		return nil, status.Errorf(codes.NotFound, "volume %s is not published at %s", id, path)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(m.Dir, &st); err != nil {
		return nil, status.Errorf(codes.Internal, "statfs %s: %v", m.Dir, err)
	}
	bs := int64(st.Bsize)
	usage := []*csi.VolumeUsage{
		{Unit: csi.VolumeUsage_BYTES, Total: int64(st.Blocks) * bs, Available: int64(st.Bavail) * bs, Used: int64(st.Blocks-st.Bfree) * bs},
		{Unit: csi.VolumeUsage_INODES, Total: int64(st.Files), Available: int64(st.Ffree), Used: int64(st.Files - st.Ffree)},
	}
	if err := d.quotaStats(ctx, id, usage); err != nil {
		return nil, grpcError(err)
	}
	return &csi.NodeGetVolumeStatsResponse{Usage: usage}, nil
}
