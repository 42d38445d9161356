package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/agentfs/agentfs/branch"
	"github.com/agentfs/agentfs/internal/repo"
)

// delayNode is a loopback node that sleeps before every open: a file:// remote behind it
// costs one injected round trip per object read, like a GET to a bucket.
type delayNode struct {
	*gofs.LoopbackNode
	delay time.Duration
}

var (
	_ = (gofs.NodeOpener)((*delayNode)(nil))
	_ = (gofs.NodeWrapChilder)((*delayNode)(nil))
)

func (n *delayNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	time.Sleep(n.delay)
	return n.LoopbackNode.Open(ctx, flags)
}

// WrapChild makes every child a delayNode too.
func (n *delayNode) WrapChild(ctx context.Context, ops gofs.InodeEmbedder) gofs.InodeEmbedder {
	if ln, ok := ops.(*gofs.LoopbackNode); ok {
		return &delayNode{LoopbackNode: ln, delay: n.delay}
	}
	return ops
}

// MountDelayed mounts a loopback view of src at dir that adds delay to every open.
func MountDelayed(src, dir string, delay time.Duration) (*fuse.Server, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(src, &st); err != nil {
		return nil, err
	}
	root := &gofs.LoopbackRoot{Path: src, Dev: uint64(st.Dev)}
	rn := &delayNode{LoopbackNode: &gofs.LoopbackNode{RootData: root}, delay: delay}
	root.RootNode = rn
	zero := time.Duration(0)
	return gofs.Mount(dir, rn, &gofs.Options{
		MountOptions: fuse.MountOptions{DirectMount: os.Geteuid() == 0, FsName: "agentfs-bench-delay"},
		AttrTimeout:  &zero, EntryTimeout: &zero,
	})
}

func cli(bin, repoDir string, args ...string) error {
	out, err := exec.Command(bin, append([]string{"--repo", repoDir}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("agentfs %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// RemoteFirstRead pushes a branch holding smallN 4 KiB files and bigN 64 MiB files to a
// file:// remote, clones it lazily through a mount that adds rtt to every object open,
// mounts the clone through a daemon and times the first full read of each file.
func RemoteFirstRead(ctx context.Context, bin, work string, p *pool, rtt time.Duration, smallN, bigN int, bigSize int64, cl *Cleanup) (small, big Value, err error) {
	for _, d := range []string{"src", "store", "delayed", "clone", "mnt"} {
		os.RemoveAll(filepath.Join(work, d))
	}
	defer os.RemoveAll(work)
	src, store, delayed, clone, mnt := filepath.Join(work, "src"), filepath.Join(work, "store"), filepath.Join(work, "delayed"), filepath.Join(work, "clone"), filepath.Join(work, "mnt")
	for _, d := range []string{store, delayed, mnt} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return small, big, err
		}
	}
	r, err := repo.Init(ctx, src)
	if err != nil {
		return small, big, err
	}
	ws, err := r.Engine.Workspace(ctx, "main")
	if err == nil {
		for i := 0; i < smallN+bigN && err == nil; i++ {
			name, size := fmt.Sprintf("small%02d.txt", i), int64(4096)
			if i >= smallN {
				name, size = fmt.Sprintf("big%02d.bin", i-smallN), bigSize
			}
			var n *branch.Inode
			if n, err = ws.Create(ctx, branch.RootIno, name, branch.Attr{Mode: 0o644}); err != nil {
				break
			}
			for off := int64(0); off < size && err == nil; off += 1 << 20 {
				_, err = ws.Write(ctx, n.Ino, off, p.chunk(int64(5000+i*64)+off>>20, int(min(1<<20, size-off))))
			}
		}
	}
	if err == nil {
		_, err = r.Engine.Checkpoint(ctx, "main", "remote", "")
	}
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return small, big, err
	}
	if err := cli(bin, src, "remote", "add", "origin", "file://"+store); err != nil {
		return small, big, err
	}
	if err := cli(bin, src, "push", "origin", "main"); err != nil {
		return small, big, err
	}
	srv, err := MountDelayed(store, delayed, rtt)
	if err != nil {
		return small, big, err
	}
	cl.Add(func() { srv.Unmount() })
	defer srv.Unmount()
	if err := cli(bin, clone, "clone", "file://"+delayed, "--branch", "main"); err != nil {
		return small, big, err
	}
	d, err := StartDaemon(bin, clone, filepath.Join(work, "..", "remote-daemon.log"), "", cl)
	if err != nil {
		return small, big, err
	}
	defer d.Stop()
	if err := d.Mount(ctx, "main", mnt); err != nil {
		return small, big, err
	}
	read := func(name string) (time.Duration, error) {
		t := time.Now()
		f, err := os.Open(filepath.Join(mnt, name))
		if err != nil {
			return 0, err
		}
		defer f.Close()
		_, err = io.Copy(io.Discard, f)
		return time.Since(t), err
	}
	// Files are read in reverse push order, big ones first: a fetch reads ahead the blocks
	// that follow in the pack, which then belong to files already read, so every timed read
	// is a true first read (in push order, all but the first small file were read-ahead hits).
	var s, b []time.Duration
	for i := bigN - 1; i >= 0; i-- {
		dt, err := read(fmt.Sprintf("big%02d.bin", i))
		if err != nil {
			return small, big, err
		}
		b = append(b, dt)
	}
	for i := smallN - 1; i >= 0; i-- {
		dt, err := read(fmt.Sprintf("small%02d.txt", i))
		if err != nil {
			return small, big, err
		}
		s = append(s, dt)
	}
	return Latencies(s), Latencies(b), nil
}
