package csidriver

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	csi "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/agentfs/agentfs/branch"
	"github.com/agentfs/agentfs/fs"
)

// StorageClass parameters.
const (
	// ParamFrom names the ref every new volume of the class is forked from (e.g.
	// main@known-good); without it a volume starts empty.
	ParamFrom = "from"
	// ParamOwner "UID:GID" mounts the class's volumes for that user (agentfs mount
	// --owner): what the repository stores as root's appears as UID:GID's, and what UID:GID
	// creates is stored as root's. For pods whose containers run as UID.
	ParamOwner = "owner"
)

// CheckParameters refuses StorageClass parameters the driver does not know (a typo would otherwise be
// ignored). The external provisioner's own parameters (csi.storage.k8s.io/...) pass.
func CheckParameters(params map[string]string) error {
	for k, v := range params {
		switch {
		case k == ParamFrom || strings.HasPrefix(k, "csi.storage.k8s.io/"):
		case k == ParamOwner:
			if _, err := fs.ParseIDMap(v); err != nil {
				return status.Error(codes.InvalidArgument, err.Error())
			}
		default:
			return status.Errorf(codes.InvalidArgument, "unknown StorageClass parameter %q: the agentfs driver takes %s and %s", k, ParamFrom, ParamOwner)
		}
	}
	return nil
}

func (d *Driver) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	var caps []*csi.ControllerServiceCapability
	for _, t := range []csi.ControllerServiceCapability_RPC_Type{
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME,
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_SNAPSHOT,
		csi.ControllerServiceCapability_RPC_LIST_SNAPSHOTS,
		csi.ControllerServiceCapability_RPC_LIST_VOLUMES,
		csi.ControllerServiceCapability_RPC_CLONE_VOLUME,
		csi.ControllerServiceCapability_RPC_GET_SNAPSHOT,
		csi.ControllerServiceCapability_RPC_GET_CAPACITY,
	} {
		caps = append(caps, &csi.ControllerServiceCapability{Type: &csi.ControllerServiceCapability_Rpc{Rpc: &csi.ControllerServiceCapability_RPC{Type: t}}})
	}
	return &csi.ControllerGetCapabilitiesResponse{Capabilities: caps}, nil
}

// checkCapabilities accepts filesystem volumes used from one node: a volume lives in one
// node's repository.
func checkCapabilities(caps []*csi.VolumeCapability) error {
	if len(caps) == 0 {
		return status.Error(codes.InvalidArgument, "volume capabilities are missing")
	}
	for _, c := range caps {
		if c.GetMount() == nil {
			return status.Error(codes.InvalidArgument, "agentfs volumes are filesystems: use access type mount, not block")
		}
		switch c.GetAccessMode().GetMode() {
		case csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER,
			csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER,
			csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY:
		default:
			return status.Errorf(codes.InvalidArgument, "access mode %s is not supported: an agentfs volume is used from one node", c.GetAccessMode().GetMode())
		}
	}
	return nil
}

func (d *Driver) topology() []*csi.Topology {
	if d.NodeID == "" {
		return nil
	}
	return []*csi.Topology{{Segments: map[string]string{TopologyKey: d.NodeID}}}
}

// CreateVolume makes a branch: empty, a fork of a snapshot, a fork of another volume, or
// a fork of the StorageClass's "from" ref. All forks are O(1).
func (d *Driver) CreateVolume(ctx context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	if req.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume name is missing")
	}
	if err := checkCapabilities(req.GetVolumeCapabilities()); err != nil {
		return nil, err
	}
	if err := CheckParameters(req.GetParameters()); err != nil {
		return nil, err
	}
	id := branchName("", req.GetName())
	if isSnapshot(id) {
		id = branchName("csi-vol-", req.GetName())
	}
	from := req.GetParameters()[ParamFrom]
	src := req.GetVolumeContentSource()
	switch {
	case src.GetSnapshot() != nil:
		from = src.GetSnapshot().GetSnapshotId()
		if !isSnapshot(from) {
			return nil, status.Errorf(codes.NotFound, "snapshot %q: no such snapshot of this driver", from)
		}
	case src.GetVolume() != nil:
		from = src.GetVolume().GetVolumeId()
		if isSnapshot(from) {
			return nil, status.Errorf(codes.NotFound, "volume %q: no such volume (it is a snapshot)", from)
		}
	}
	if _, err := wantedQuota(req.GetCapacityRange()); err != nil {
		return nil, err // before anything is made
	}
	_, err := d.Daemon.CreateBranch(ctx, id, from)
	existed := errors.Is(err, branch.ErrExists) // the same name again: the volume made before (CSI idempotency)
	if err != nil && !existed {
		return nil, grpcError(err)
	}
	capacity, err := d.setCapacity(ctx, id, req.GetCapacityRange(), existed) // capacity.go
	if err != nil {
		return nil, err
	}
	return &csi.CreateVolumeResponse{Volume: &csi.Volume{
		VolumeId:           id,
		CapacityBytes:      capacity, // the branch's byte quota; 0: none, the repository's disk is shared
		VolumeContext:      volumeContext(req.GetParameters()),
		ContentSource:      src,
		AccessibleTopology: d.topology(),
	}}, nil
}

func (d *Driver) DeleteVolume(ctx context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "volume id is missing")
	}
	if isSnapshot(id) {
		return &csi.DeleteVolumeResponse{}, nil // not a volume: nothing of that id to delete
	}
	err := d.Daemon.DeleteBranch(ctx, id)
	if errors.Is(err, branch.ErrNotFound) || errors.Is(err, branch.ErrInvalidName) {
		err = nil // gone already
	}
	return &csi.DeleteVolumeResponse{}, grpcError(err)
}

func (d *Driver) ValidateVolumeCapabilities(ctx context.Context, req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume id is missing")
	}
	if len(req.GetVolumeCapabilities()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "volume capabilities are missing")
	}
	if _, err := d.Daemon.Log(ctx, req.GetVolumeId()); err != nil {
		return nil, grpcError(err)
	}
	if err := checkCapabilities(req.GetVolumeCapabilities()); err != nil {
		return &csi.ValidateVolumeCapabilitiesResponse{Message: err.Error()}, nil
	}
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeContext:      req.GetVolumeContext(),
		VolumeCapabilities: req.GetVolumeCapabilities(),
		Parameters:         req.GetParameters(),
	}}, nil
}

// page returns the entries of one page of a sorted list and the next page's token: the
// index of its first entry.
func page[T any](all []T, token string, max int32) ([]T, string, error) {
	start := 0
	if token != "" {
		n, err := strconv.Atoi(token)
		if err != nil || n < 0 || n > len(all) {
			return nil, "", status.Errorf(codes.Aborted, "starting token %q is not one this driver gave", token)
		}
		start = n
	}
	end := len(all)
	if max > 0 && start+int(max) < end {
		end = start + int(max)
	}
	next := ""
	if end < len(all) {
		next = strconv.Itoa(end)
	}
	return all[start:end], next, nil
}

func (d *Driver) ListVolumes(ctx context.Context, req *csi.ListVolumesRequest) (*csi.ListVolumesResponse, error) {
	bs, err := d.Daemon.Branches(ctx)
	if err != nil {
		return nil, grpcError(err)
	}
	var names []string
	quota := map[string]int64{}
	for _, b := range bs {
		if !isSnapshot(b.Name) {
			names = append(names, b.Name)
			quota[b.Name] = b.QuotaBytes
		}
	}
	sort.Strings(names)
	names, next, err := page(names, req.GetStartingToken(), req.GetMaxEntries())
	if err != nil {
		return nil, err
	}
	out := &csi.ListVolumesResponse{NextToken: next}
	for _, n := range names {
		out.Entries = append(out.Entries, &csi.ListVolumesResponse_Entry{Volume: &csi.Volume{VolumeId: n, CapacityBytes: quota[n], AccessibleTopology: d.topology()}})
	}
	return out, nil
}

// snapshotOf describes the snapshot held by branch id: the checkpoint the branch starts
// from, which records the volume it was taken of.
func (d *Driver) snapshotOf(ctx context.Context, id string) (*csi.Snapshot, error) {
	log, err := d.Daemon.Log(ctx, id)
	if err != nil {
		return nil, err
	}
	if len(log) == 0 {
		return nil, fmt.Errorf("snapshot %s has no checkpoint: %w", id, branch.ErrNotFound)
	}
	cp := log[0]
	return &csi.Snapshot{SnapshotId: id, SourceVolumeId: cp.Branch, CreationTime: timestamppb.New(cp.Time), ReadyToUse: true}, nil
}

// CreateSnapshot checkpoints the volume and gives the checkpoint a holder branch, which
// keeps it after the volume is deleted. The snapshot id is the holder branch's name.
func (d *Driver) CreateSnapshot(ctx context.Context, req *csi.CreateSnapshotRequest) (*csi.CreateSnapshotResponse, error) {
	if req.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "snapshot name is missing")
	}
	src := req.GetSourceVolumeId()
	if src == "" {
		return nil, status.Error(codes.InvalidArgument, "source volume id is missing")
	}
	if isSnapshot(src) {
		return nil, status.Errorf(codes.InvalidArgument, "%s is a snapshot, not a volume", src)
	}
	id := branchName(snapshotPrefix, req.GetName())
	if s, err := d.snapshotOf(ctx, id); err == nil {
		if s.SourceVolumeId != src {
			return nil, status.Errorf(codes.AlreadyExists, "snapshot %q exists already, of volume %s", req.GetName(), s.SourceVolumeId)
		}
		return &csi.CreateSnapshotResponse{Snapshot: s}, nil
	} else if !errors.Is(err, branch.ErrNotFound) {
		return nil, grpcError(err)
	}
	cp, err := d.Daemon.Checkpoint(ctx, src, "", "CSI snapshot "+req.GetName())
	if err != nil {
		return nil, grpcError(err)
	}
	if _, err := d.Daemon.CreateBranch(ctx, id, cp.ID); err != nil && !errors.Is(err, branch.ErrExists) {
		return nil, grpcError(err)
	}
	s, err := d.snapshotOf(ctx, id)
	if err != nil {
		return nil, grpcError(err)
	}
	if s.SourceVolumeId != src { // a concurrent CreateSnapshot of another volume won
		return nil, status.Errorf(codes.AlreadyExists, "snapshot %q exists already, of volume %s", req.GetName(), s.SourceVolumeId)
	}
	return &csi.CreateSnapshotResponse{Snapshot: s}, nil
}

func (d *Driver) DeleteSnapshot(ctx context.Context, req *csi.DeleteSnapshotRequest) (*csi.DeleteSnapshotResponse, error) {
	id := req.GetSnapshotId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "snapshot id is missing")
	}
	if !isSnapshot(id) {
		return &csi.DeleteSnapshotResponse{}, nil // not a snapshot id of ours: nothing to delete
	}
	err := d.Daemon.DeleteBranch(ctx, id)
	if errors.Is(err, branch.ErrNotFound) || errors.Is(err, branch.ErrInvalidName) {
		err = nil
	}
	return &csi.DeleteSnapshotResponse{}, grpcError(err)
}

func (d *Driver) ListSnapshots(ctx context.Context, req *csi.ListSnapshotsRequest) (*csi.ListSnapshotsResponse, error) {
	var ids []string
	if id := req.GetSnapshotId(); id != "" {
		if isSnapshot(id) {
			ids = []string{id}
		}
	} else {
		bs, err := d.Daemon.Branches(ctx)
		if err != nil {
			return nil, grpcError(err)
		}
		for _, b := range bs {
			if isSnapshot(b.Name) {
				ids = append(ids, b.Name)
			}
		}
	}
	var all []*csi.Snapshot
	for _, id := range ids {
		s, err := d.snapshotOf(ctx, id)
		if errors.Is(err, branch.ErrNotFound) || errors.Is(err, branch.ErrInvalidName) {
			continue // deleted meanwhile, or never was
		}
		if err != nil {
			return nil, grpcError(err)
		}
		if v := req.GetSourceVolumeId(); v != "" && s.SourceVolumeId != v {
			continue
		}
		all = append(all, s)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].SnapshotId < all[j].SnapshotId })
	all, next, err := page(all, req.GetStartingToken(), req.GetMaxEntries())
	if err != nil {
		return nil, err
	}
	out := &csi.ListSnapshotsResponse{NextToken: next}
	for _, s := range all {
		out.Entries = append(out.Entries, &csi.ListSnapshotsResponse_Entry{Snapshot: s})
	}
	return out, nil
}

func (d *Driver) GetSnapshot(ctx context.Context, req *csi.GetSnapshotRequest) (*csi.GetSnapshotResponse, error) {
	id := req.GetSnapshotId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "snapshot id is missing")
	}
	if !isSnapshot(id) {
		return nil, status.Errorf(codes.NotFound, "snapshot %q: no such snapshot of this driver", id)
	}
	s, err := d.snapshotOf(ctx, id)
	if err != nil {
		return nil, grpcError(err)
	}
	return &csi.GetSnapshotResponse{Snapshot: s}, nil
}

// volumeContext keeps what NodePublishVolume needs from the parameters.
func volumeContext(params map[string]string) map[string]string {
	if o := params[ParamOwner]; o != "" {
		return map[string]string{ParamOwner: o}
	}
	return nil
}
