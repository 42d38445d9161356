package bench

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/agentfs/agentfs/branch"
	"github.com/agentfs/agentfs/store"
)

const perDir = 1000

func smallContent(i int) []byte { return fmt.Appendf(nil, "file %d of the benchmark tree\n", i) }

// BuildTree makes branch name holding files small files (in directories of 1,000) through
// the engine's bulk builder and returns its commit.
func BuildTree(ctx context.Context, e *branch.Engine, name string, files int) (store.ID, error) {
	return e.BulkBranch(ctx, name, files, perDir, smallContent)
}

// changedContent is 4 KiB of incompressible bytes unique to (tag, i), so that a checkpoint
// hashes and stores every changed file (no dedup, no compression shortcut).
func changedContent(tag string, i int) []byte {
	var seed [32]byte
	copy(seed[:], fmt.Sprintf("%s/%d", tag, i))
	b := make([]byte, 4096)
	rand.NewChaCha8(seed).Read(b)
	return b
}

// changeFiles rewrites files first..first+n-1 (modulo total) of a bulk tree in ws with 4 KiB
// each.
func changeFiles(ctx context.Context, ws *branch.Workspace, total, first, n int, tag string) error {
	for k := 0; k < n; k++ {
		i := (first + k) % total
		d, err := ws.Lookup(ctx, branch.RootIno, fmt.Sprintf("d%05d", i/perDir))
		if err != nil {
			return err
		}
		f, err := ws.Lookup(ctx, d.Ino, fmt.Sprintf("f%07d", i))
		if err != nil {
			return err
		}
		if _, err := ws.Write(ctx, f.Ino, 0, changedContent(tag, i)); err != nil {
			return err
		}
	}
	return nil
}

// ForkLatency forks the commit n times and returns the latency distribution of CreateBranch.
func ForkLatency(ctx context.Context, e *branch.Engine, commit store.ID, prefix string, n int) (Value, error) {
	s := make([]time.Duration, n)
	ref := commit.String()
	for i := range s {
		t := time.Now()
		if _, err := e.CreateBranch(ctx, fmt.Sprintf("%s-%d", prefix, i), ref); err != nil {
			return Value{}, err
		}
		s[i] = time.Since(t)
	}
	return Latencies(s), nil
}

// CheckpointLatency forks the commit (of a tree of total files) and, runs times, changes n
// files and times the checkpoint.
func CheckpointLatency(ctx context.Context, e *branch.Engine, commit store.ID, total, n, runs int, name string) (Value, error) {
	if _, err := e.CreateBranch(ctx, name, commit.String()); err != nil {
		return Value{}, err
	}
	ws, err := e.Workspace(ctx, name)
	if err != nil {
		return Value{}, err
	}
	s := make([]time.Duration, runs)
	for r := range s {
		if err := changeFiles(ctx, ws, total, r*n*7919, n, name+"/"+strconv.Itoa(r)); err != nil {
			return Value{}, err
		}
		t := time.Now()
		if _, err := e.Checkpoint(ctx, name, "", ""); err != nil {
			return Value{}, err
		}
		s[r] = time.Since(t)
	}
	return Latencies(s), nil
}

// DiffLatency makes a checkpoint that differs from commit by n files and times Diff between
// the two, runs times.
func DiffLatency(ctx context.Context, e *branch.Engine, commit store.ID, total, n, runs int, name string) (Value, error) {
	if _, err := e.CreateBranch(ctx, name, commit.String()); err != nil {
		return Value{}, err
	}
	ws, err := e.Workspace(ctx, name)
	if err != nil {
		return Value{}, err
	}
	// Spread the changes over the tree.
	for k := 0; k < n; k++ {
		if err := changeFiles(ctx, ws, total, k*(total/n), 1, name); err != nil {
			return Value{}, err
		}
	}
	b, err := e.Checkpoint(ctx, name, "", "")
	if err != nil {
		return Value{}, err
	}
	s := make([]time.Duration, runs)
	for r := range s {
		t := time.Now()
		ch, err := e.Diff(ctx, commit.String(), b.String())
		s[r] = time.Since(t)
		if err != nil {
			return Value{}, err
		}
		if len(ch) != n {
			return Value{}, fmt.Errorf("diff found %d changes, want %d", len(ch), n)
		}
	}
	return Latencies(s), nil
}

// DiskUsage returns the bytes a directory tree occupies on disk (blocks allocated, as du
// counts them). Files that vanish during the walk (Pebble compactions remove files) are
// skipped; du would fail on them.
func DiskUsage(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			if errors.Is(err, syscall.ENOENT) {
				return nil
			}
			return err
		}
		total += st.Blocks * 512
		return nil
	})
	return total, err
}

// Storage measures the repository size for forks versions that each rewrite pct of a tree
// of treeBytes (files of 1 MiB of incompressible data).
func Storage(ctx context.Context, e *branch.Engine, p *pool, repoDir string, treeBytes int64, forks int, pct float64) (onDisk, logical int64, err error) {
	const fileSize = 1 << 20
	files := int(treeBytes / fileSize)
	if _, err := e.CreateBranch(ctx, "storage", ""); err != nil {
		return 0, 0, err
	}
	ws, err := e.Workspace(ctx, "storage")
	if err != nil {
		return 0, 0, err
	}
	inos := make([]uint64, files)
	for i := range inos {
		n, err := ws.Create(ctx, branch.RootIno, fmt.Sprintf("blob%05d.bin", i), branch.Attr{Mode: 0o644})
		if err != nil {
			return 0, 0, err
		}
		inos[i] = n.Ino
		if _, err := ws.Write(ctx, n.Ino, 0, p.chunk(int64(i), fileSize)); err != nil {
			return 0, 0, err
		}
	}
	base, err := e.Checkpoint(ctx, "storage", "base", "")
	if err != nil {
		return 0, 0, err
	}
	change := max(1, int(float64(files)*pct))
	for f := 0; f < forks; f++ {
		name := fmt.Sprintf("storage-fork%03d", f)
		if _, err := e.CreateBranch(ctx, name, base.String()); err != nil {
			return 0, 0, err
		}
		fw, err := e.Workspace(ctx, name)
		if err != nil {
			return 0, 0, err
		}
		for k := 0; k < change; k++ {
			i := (f*change + k) % files
			if _, err := fw.Write(ctx, inos[i], 0, p.chunk(int64(files+f*change+k), fileSize)); err != nil {
				return 0, 0, err
			}
		}
		if _, err := e.Checkpoint(ctx, name, "", ""); err != nil {
			return 0, 0, err
		}
	}
	if err := e.Flush(ctx); err != nil {
		return 0, 0, err
	}
	if err := e.Store().DB().Flush(); err != nil {
		return 0, 0, err
	}
	onDisk, err = DiskUsage(repoDir)
	return onDisk, int64(forks+1) * int64(files) * fileSize, err
}

func removeAll(dir string) { os.RemoveAll(dir) }
