// Package csidriver is the agentfs CSI driver (Container Storage Interface, spec v1): a
// volume is a branch, a snapshot is a checkpoint, a clone is an O(1) fork.
//
// The driver is a client of the agentfs daemon: every call goes to the daemon's control
// API on its Unix socket (api.Service), and the daemon makes the FUSE mounts. So one
// process owns the repository (Pebble's lock), the CLI keeps working beside the driver,
// and restarting the driver (an upgrade of the node plugin) leaves every mount in place.
package csidriver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"strings"

	csi "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/agentfs/agentfs/api"
	"github.com/agentfs/agentfs/branch"
)

// Name is the driver name Kubernetes knows the driver by (CSIDriver, StorageClass).
const Name = "csi.agentfs.io"

// TopologyKey is the topology segment a node reports: volumes live in the repository of
// one node's daemon, so pods using them must run on that node.
const TopologyKey = "topology.agentfs.io/node"

// snapshotPrefix starts the name of the branch that holds a snapshot's checkpoint. The
// branch keeps the checkpoint alive (garbage collection keeps what a branch references)
// after its source volume is deleted, as CSI requires of snapshots.
const snapshotPrefix = "csi-snap-"

// Driver serves the CSI Identity, Controller and Node services.
type Driver struct {
	Daemon  api.Service // the agentfs daemon
	NodeID  string      // this node's name; empty: no node service facts to give
	RepoDir string      // the daemon's repository, for the free space of its disk (GetCapacity)
	Version string
	Logger  *log.Logger

	space spaceCache // capacity.go

	csi.UnimplementedIdentityServer
	csi.UnimplementedControllerServer
	csi.UnimplementedNodeServer
}

// Serve listens on endpoint (unix:///path/csi.sock) until ctx ends.
func (d *Driver) Serve(ctx context.Context, endpoint string) error {
	path, ok := strings.CutPrefix(endpoint, "unix://")
	if !ok || path == "" {
		return fmt.Errorf("--endpoint %q: give a Unix socket as unix:///path/csi.sock", endpoint)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove the old socket %s: %w", path, err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return err
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(d.logErrors))
	csi.RegisterIdentityServer(srv, d)
	csi.RegisterControllerServer(srv, d)
	csi.RegisterNodeServer(srv, d)
	go func() {
		<-ctx.Done()
		srv.GracefulStop()
	}()
	d.logf("CSI driver %s serving on %s (node %q)", Name, path, d.NodeID)
	return srv.Serve(ln)
}

func (d *Driver) logf(format string, args ...any) {
	if d.Logger != nil {
		d.Logger.Printf(format, args...)
	}
}

// logErrors logs every failed call: the CO shows only a summary.
func (d *Driver) logErrors(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	resp, err := h(ctx, req)
	if err != nil {
		d.logf("%s: %v", info.FullMethod, err)
	}
	return resp, err
}

// grpcError maps an agentfs error to the CSI status code the spec asks for.
func grpcError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, branch.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, branch.ErrExists):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, branch.ErrInvalidName), errors.Is(err, branch.ErrAmbiguous):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, branch.ErrBusy), errors.Is(err, branch.ErrReadOnly):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

// branchName turns a CSI name into a branch name: the name itself with prefix when that
// is a valid branch name, else prefix and a hash of the name (same name, same branch,
// which makes CreateVolume and CreateSnapshot idempotent).
func branchName(prefix, name string) string {
	if n := prefix + name; branch.ValidateName("branch", n) == nil {
		return n
	}
	sum := sha256.Sum256([]byte(name))
	return prefix + "h-" + hex.EncodeToString(sum[:16])
}

func isSnapshot(id string) bool { return strings.HasPrefix(id, snapshotPrefix) }
