package api

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// Mounting and unmounting through the daemon's code path (Local + MountTable, real FUSE
// mounts) leaves nothing behind: each unmount removes its reset hook (the hook held the
// whole mount: its inode tree and the server's buffers), idle workspaces are evicted, and
// the heap after the cycles is within 20% of before. AGENTFS_FLEET_CYCLES changes the
// number of cycles (default 1,000).
func TestMountCyclesReleaseEverything(t *testing.T) {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		if os.Getenv("AGENTFS_REQUIRE_FUSE") == "1" {
			t.Fatalf("FUSE required (AGENTFS_REQUIRE_FUSE=1): %v", err)
		}
		t.Skipf("no /dev/fuse: %v", err)
	}
	cycles := 1000
	if s := os.Getenv("AGENTFS_FLEET_CYCLES"); s != "" {
		cycles, _ = strconv.Atoi(s)
	}
	ctx := context.Background()
	l := newService(t)
	const branches = 20
	for i := 0; i < branches; i++ {
		if _, err := l.CreateBranch(ctx, fmt.Sprintf("b%02d", i), "main"); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(t.TempDir(), "mnt")
	os.Mkdir(dir, 0o755)
	t.Cleanup(func() { l.Mounter.UnmountAll() })
	cycle := func(i int) {
		br := fmt.Sprintf("b%02d", i%branches)
		if _, err := l.Mount(ctx, br, dir, MountOptions{}); err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "f.txt")); err != nil || string(b) != "x" {
			t.Fatalf("cycle %d: read %q, %v", i, b, err)
		}
		ws, err := l.Engine.Workspace(ctx, br)
		if err != nil {
			t.Fatal(err)
		}
		if n := ws.Hooks(); n != 1 {
			t.Fatalf("cycle %d: %d reset hooks while mounted, want 1", i, n)
		}
		if err := l.Unmount(ctx, dir); err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		if n := ws.Hooks(); n != 0 {
			t.Fatalf("cycle %d: %d reset hooks after unmount, want 0", i, n)
		}
	}
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse
	}
	for i := 0; i < 10; i++ { // warm up: what every later mount reuses
		cycle(i)
	}
	l.Engine.EvictIdle(0)
	before := heap()
	for i := 0; i < cycles; i++ {
		cycle(i)
	}
	// The last unmount of a branch drops its workspace (EvictUnused).
	if n := l.Engine.OpenWorkspaces(); n != 0 {
		t.Errorf("%d workspaces still open after the cycles, want 0", n)
	}
	after := heap()
	t.Logf("%d mount/unmount cycles: heap in use %d -> %d KiB (%+.1f%%)", cycles, before>>10, after>>10, 100*(float64(after)-float64(before))/float64(before))
	if float64(after) > 1.2*float64(before) {
		t.Errorf("heap grew from %d to %d KiB over %d mount/unmount cycles (more than 20%%)", before>>10, after>>10, cycles)
	}
	// An evicted branch opens again from its ref, with its content; a workspace opened
	// without a mount is dropped by EvictIdle.
	if err := l.WriteFile(ctx, "b00", "g.txt", []byte("after")); err != nil {
		t.Fatal(err)
	}
	if n := l.Engine.OpenWorkspaces(); n == 0 {
		t.Error("no workspace open after a write through the API")
	}
	if n := l.Engine.EvictIdle(0); n == 0 {
		t.Error("EvictIdle evicted nothing")
	}
	var got strings.Builder
	if err := l.Cat(ctx, "b00", "g.txt", &got); err != nil || got.String() != "after" {
		t.Fatalf("after eviction, b00:g.txt reads %q, %v", got.String(), err)
	}
	if _, err := l.Checkpoint(ctx, "b00", "", ""); err != nil {
		t.Fatal(err)
	}
}
