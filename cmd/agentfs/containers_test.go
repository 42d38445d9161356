package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	csi "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// startProcess runs the agentfs binary until the test ends and waits for sock to appear.
func startProcess(t *testing.T, sock string, args ...string) *bytes.Buffer {
	t.Helper()
	var logb bytes.Buffer
	cmd := exec.Command(agentfsBin, args...)
	cmd.Stdout, cmd.Stderr = &logb, &logb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	for i := 0; ; i++ {
		if c, err := dialUnix(sock); err == nil {
			c.Close()
			return &logb
		}
		if i == 300 {
			t.Fatalf("agentfs %v did not listen on %s:\n%s", args, sock, logb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sigkillKeepMount kills the daemon with SIGKILL and leaves its dead mount in place.
func sigkillKeepMount(t *testing.T, d *daemon) {
	t.Helper()
	d.cmd.Process.Kill()
	<-d.done
}

// writeSynced writes and fsyncs a file: these tests are about the mounts across a restart,
// and fsync is what makes data certain to survive a kill -9 on every version of the write
// path. (Without it, the write path of main before walrepair lost such files.)
func writeSynced(t *testing.T, name, data string) {
	t.Helper()
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func unmountLater(t *testing.T, dirs ...string) {
	t.Cleanup(func() {
		for _, d := range dirs {
			syscall.Unmount(d, syscall.MNT_DETACH)
		}
	})
}

// TestDockerPluginAcrossDaemonRestart runs the real commands: serve --init on a fresh
// directory, docker-plugin beside it; a volume forked from main is mounted; the daemon is
// killed (kill -9), which leaves the mount dead (ENOTCONN); after a restart, Mount works
// again at the same place with the data written before the kill, and Unmount clears a
// dead mount too.
func TestDockerPluginAcrossDaemonRestart(t *testing.T) {
	requireFUSE(t)
	repo := filepath.Join(t.TempDir(), "repo") // no repository yet: serve --init makes it
	d := startDaemon(t, repo, "--init")
	ok(t, repo, "import", "main", writeTree(t, map[string]string{"README": "main's file\n"}))
	sock := filepath.Join(t.TempDir(), "plugins", "agentfs.sock")
	root := filepath.Join(t.TempDir(), "volumes")
	mp := filepath.Join(root, "v1")
	unmountLater(t, mp)
	startProcess(t, sock, "--repo", repo, "docker-plugin", "--socket", sock, "--mount-root", root)
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	call := func(name string, body map[string]any) map[string]any {
		t.Helper()
		b, _ := json.Marshal(body)
		resp, err := hc.Post("http://plugin/VolumeDriver."+name, "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		if e, _ := out["Err"].(string); e != "" {
			t.Fatalf("%s: %s", name, e)
		}
		return out
	}
	call("Create", map[string]any{"Name": "v1", "Opts": map[string]string{"from": "main"}})
	if got := call("Mount", map[string]any{"Name": "v1", "ID": "c1"})["Mountpoint"]; got != mp {
		t.Fatalf("Mountpoint %v, want %s", got, mp)
	}
	writeSynced(t, filepath.Join(mp, "w.txt"), "written before the kill\n")

	sigkillKeepMount(t, d)
	if _, err := os.ReadDir(mp); !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("after kill -9 of the daemon, the mount answers %v; want ENOTCONN", err)
	}
	d = startDaemon(t, repo, "--init")
	call("Mount", map[string]any{"Name": "v1", "ID": "c2"})
	for name, want := range map[string]string{"README": "main's file\n", "w.txt": "written before the kill\n"} {
		if got, err := os.ReadFile(filepath.Join(mp, name)); err != nil || string(got) != want {
			t.Fatalf("after the restart, %s = %q, %v", name, got, err)
		}
	}

	sigkillKeepMount(t, d)
	startDaemon(t, repo, "--init")
	call("Unmount", map[string]any{"Name": "v1", "ID": "c1"})
	call("Unmount", map[string]any{"Name": "v1", "ID": "c2"})
	if _, err := os.Stat(mp); !os.IsNotExist(err) {
		t.Fatalf("the dead mount was not cleared by the last Unmount: %v", err)
	}
	call("Remove", map[string]any{"Name": "v1"})
}

// TestCSICommandAcrossDaemonRestart runs agentfs csi as a process beside serve: Probe
// follows the daemon; a volume published before a kill -9 of the daemon unpublishes
// cleanly after the restart (no pod stuck terminating) and publishes again with its data.
func TestCSICommandAcrossDaemonRestart(t *testing.T) {
	requireFUSE(t)
	repo := filepath.Join(t.TempDir(), "repo")
	d := startDaemon(t, repo, "--init")
	sock := filepath.Join(t.TempDir(), "csi.sock")
	startProcess(t, sock, "--repo", repo, "csi", "--endpoint", "unix://"+sock, "--node-id", "node-1")
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	id, ctl, node := csi.NewIdentityClient(conn), csi.NewControllerClient(conn), csi.NewNodeClient(conn)
	probe := func() bool {
		r, err := id.Probe(ctx, &csi.ProbeRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetReady().GetValue()
	}
	if info, err := id.GetPluginInfo(ctx, &csi.GetPluginInfoRequest{}); err != nil || info.Name != "csi.agentfs.io" {
		t.Fatalf("GetPluginInfo: %v, %v", info, err)
	}
	if !probe() {
		t.Fatal("Probe: not ready with the daemon running")
	}
	mode := &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
	}
	v, err := ctl.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "pvc-1", VolumeCapabilities: []*csi.VolumeCapability{mode}})
	if err != nil {
		t.Fatal(err)
	}
	if seg := v.Volume.AccessibleTopology[0].Segments["topology.agentfs.io/node"]; seg != "node-1" {
		t.Fatalf("volume topology %v, want node-1", v.Volume.AccessibleTopology)
	}
	target := filepath.Join(t.TempDir(), "pods", "p1", "mount")
	unmountLater(t, target)
	pub := &csi.NodePublishVolumeRequest{VolumeId: "pvc-1", TargetPath: target, VolumeCapability: mode}
	if _, err := node.NodePublishVolume(ctx, pub); err != nil {
		t.Fatal(err)
	}
	writeSynced(t, filepath.Join(target, "f"), "kept\n")

	sigkillKeepMount(t, d)
	if probe() {
		t.Fatal("Probe: ready with the daemon killed")
	}
	startDaemon(t, repo, "--init")
	if !probe() {
		t.Fatal("Probe: not ready after the daemon restarted")
	}
	unpub := &csi.NodeUnpublishVolumeRequest{VolumeId: "pvc-1", TargetPath: target}
	if _, err := node.NodeUnpublishVolume(ctx, unpub); err != nil {
		t.Fatalf("unpublish of a volume whose daemon died: %v", err)
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Fatalf("target left after unpublish: %v", err)
	}
	if _, err := node.NodePublishVolume(ctx, pub); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(target, "f")); err != nil || string(got) != "kept\n" {
		t.Fatalf("after republish: %q, %v", got, err)
	}
	if _, err := node.NodeUnpublishVolume(ctx, unpub); err != nil {
		t.Fatal(err)
	}
}
