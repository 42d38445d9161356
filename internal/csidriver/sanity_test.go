package csidriver

import (
	"context"
	"log"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	csi "github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/kubernetes-csi/csi-test/v5/pkg/sanity"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/agentfs/agentfs/internal/daemontest"
)

// startDriver serves the driver on a Unix socket, talking to a real daemon with real FUSE
// mounts, and returns its endpoint.
func startDriver(t *testing.T) (endpoint string, d *daemontest.Daemon) {
	return startDriverWith(t, nil)
}

// startDriverWith is startDriver with a chance to set up the driver before it serves.
func startDriverWith(t *testing.T, setup func(*Driver)) (endpoint string, d *daemontest.Daemon) {
	daemontest.RequireFUSE(t)
	d = daemontest.Start(t)
	drv := &Driver{Daemon: d.Client, NodeID: "node-1", RepoDir: d.Dir, Version: "test", Logger: log.New(os.Stderr, "csi: ", 0)}
	if setup != nil {
		setup(drv)
	}
	endpoint = "unix://" + filepath.Join(t.TempDir(), "csi.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- drv.Serve(ctx, endpoint) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("driver: %v", err)
		}
	})
	for i := 0; ; i++ {
		if _, err := os.Stat(endpoint[len("unix://"):]); err == nil {
			break
		}
		if i == 500 {
			t.Fatal("the driver did not start listening")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return endpoint, d
}

// TestSanity runs the CSI conformance suite (csi-test's sanity package) against the
// driver and a real daemon.
func TestSanity(t *testing.T) {
	endpoint, _ := startDriver(t)
	cfg := sanity.NewTestConfig()
	cfg.Address = endpoint
	dir := t.TempDir()
	cfg.TargetPath = filepath.Join(dir, "target")
	cfg.StagingPath = filepath.Join(dir, "staging")
	cfg.IdempotentCount = 3
	sanity.Test(t, cfg)
}

func dial(t *testing.T, endpoint string) *grpc.ClientConn {
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

var rwMount = &csi.VolumeCapability{
	AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
	AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
}

// TestSnapshotRestoreScenario is the scenario through the CSI gRPC API: create a
// volume, publish it and write a file, snapshot it, create a volume from the snapshot,
// publish that: the file is there, and a write to it leaves the first volume unchanged.
func TestSnapshotRestoreScenario(t *testing.T) {
	endpoint, _ := startDriver(t)
	conn := dial(t, endpoint)
	ctl, node := csi.NewControllerClient(conn), csi.NewNodeClient(conn)
	ctx := context.Background()
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	publish := func(volID, target string) {
		t.Helper()
		_, err := node.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: volID, TargetPath: target, VolumeCapability: rwMount})
		must(err)
		t.Cleanup(func() {
			node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: volID, TargetPath: target})
		})
	}

	v1, err := ctl.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "pvc-one", VolumeCapabilities: []*csi.VolumeCapability{rwMount}})
	must(err)
	t1 := filepath.Join(dir, "one")
	publish(v1.Volume.VolumeId, t1)
	must(os.WriteFile(filepath.Join(t1, "notes.txt"), []byte("written in volume one\n"), 0o644))

	snap, err := ctl.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "snap-one", SourceVolumeId: v1.Volume.VolumeId})
	must(err)
	if !snap.Snapshot.ReadyToUse || snap.Snapshot.SourceVolumeId != v1.Volume.VolumeId {
		t.Fatalf("snapshot %+v: want ready, of %s", snap.Snapshot, v1.Volume.VolumeId)
	}

	v2, err := ctl.CreateVolume(ctx, &csi.CreateVolumeRequest{
		Name:               "pvc-two",
		VolumeCapabilities: []*csi.VolumeCapability{rwMount},
		VolumeContentSource: &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{
			Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: snap.Snapshot.SnapshotId}}},
	})
	must(err)
	t2 := filepath.Join(dir, "two")
	publish(v2.Volume.VolumeId, t2)
	got, err := os.ReadFile(filepath.Join(t2, "notes.txt"))
	must(err)
	if string(got) != "written in volume one\n" {
		t.Fatalf("restored volume holds %q", got)
	}
	must(os.WriteFile(filepath.Join(t2, "notes.txt"), []byte("changed in volume two\n"), 0o644))
	must(os.WriteFile(filepath.Join(t2, "new.txt"), []byte("only in two\n"), 0o644))

	got, err = os.ReadFile(filepath.Join(t1, "notes.txt"))
	must(err)
	if string(got) != "written in volume one\n" {
		t.Fatalf("volume one changed by a write to volume two: %q", got)
	}
	if _, err := os.Stat(filepath.Join(t1, "new.txt")); !os.IsNotExist(err) {
		t.Fatalf("new.txt of volume two shows in volume one: %v", err)
	}

	// The snapshot outlives its volume, and a snapshot publishes read-only.
	_, err = node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: v1.Volume.VolumeId, TargetPath: t1})
	must(err)
	_, err = ctl.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: v1.Volume.VolumeId})
	must(err)
	t3 := filepath.Join(dir, "snap")
	publish(snap.Snapshot.SnapshotId, t3)
	got, err = os.ReadFile(filepath.Join(t3, "notes.txt"))
	must(err)
	if string(got) != "written in volume one\n" {
		t.Fatalf("snapshot after its volume was deleted holds %q", got)
	}
	if err := os.WriteFile(filepath.Join(t3, "x"), nil, 0o644); err == nil {
		t.Fatal("a write to a published snapshot succeeded; want read-only")
	}
}

// TestOwnerParameter: a StorageClass's owner parameter reaches the mount (files stored as
// root's show as the pod user's), and an unknown parameter is refused.
func TestOwnerParameter(t *testing.T) {
	endpoint, _ := startDriver(t)
	ctl, node := csi.NewControllerClient(dial(t, endpoint)), csi.NewNodeClient(dial(t, endpoint))
	ctx := context.Background()
	if _, err := ctl.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "typo", VolumeCapabilities: []*csi.VolumeCapability{rwMount},
		Parameters: map[string]string{"ownr": "1000:1000"}}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("unknown parameter: %v, want InvalidArgument", err)
	}
	v, err := ctl.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "owned", VolumeCapabilities: []*csi.VolumeCapability{rwMount},
		Parameters: map[string]string{ParamOwner: "1000:1000", "csi.storage.k8s.io/pvc/name": "claim"}})
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "mnt")
	if _, err := node.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: v.Volume.VolumeId, TargetPath: target,
		VolumeCapability: rwMount, VolumeContext: v.Volume.VolumeContext}); err != nil {
		t.Fatal(err)
	}
	defer node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: v.Volume.VolumeId, TargetPath: target})
	var st syscall.Stat_t
	if err := syscall.Stat(target, &st); err != nil || st.Uid != 1000 || st.Gid != 1000 {
		t.Fatalf("volume root owned by %d:%d (%v), want 1000:1000", st.Uid, st.Gid, err)
	}
}
