package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"

	"github.com/agentfs/agentfs/work"
)

// invalidateAll runs after a rollback or merge replaced the workspace's content. It drops
// every kernel cache entry the mount may hold:
//
//   - attributes and page cache (NotifyContent) of every inode go-fuse knows and of every
//     file with an open handle (an unlinked open file is in no directory);
//   - every dentry go-fuse knows (NotifyEntry), so names that went away or now point at
//     another inode are looked up again;
//   - every name in the new content of each known directory, because the kernel may cache it
//     as a negative entry (it did not exist before the reset).
//
// It is called outside any FUSE request (the workspace calls it from Rollback), so notifying
// the kernel cannot deadlock against a request that holds a directory lock.
func (f *fsys) invalidateAll() {
	if f.closed.Load() {
		return
	}
	ctx := context.Background()
	f.blocks.forget()
	type dirEntry struct {
		dir  *gofs.Inode
		name string
	}
	seen := map[*gofs.Inode]bool{}
	var inodes []*gofs.Inode
	var entries []dirEntry
	var walk func(dir *gofs.Inode)
	walk = func(dir *gofs.Inode) {
		if seen[dir] {
			return
		}
		seen[dir] = true
		inodes = append(inodes, dir)
		if !dir.IsDir() {
			return
		}
		known := dir.Children()
		for name, c := range known {
			entries = append(entries, dirEntry{dir, name})
			walk(c)
		}
		// Names of the new content, which the kernel may hold as negative entries.
		_ = f.ws.ReadDir(ctx, dir.StableAttr().Ino, "", func(e work.DirEntry) error {
			if _, ok := known[e.Name]; !ok {
				entries = append(entries, dirEntry{dir, e.Name})
			}
			return nil
		})
	}
	walk(f.root.EmbeddedInode())
	f.mu.Lock()
	for n := range f.open {
		if in := n.EmbeddedInode(); !seen[in] {
			seen[in] = true
			inodes = append(inodes, in)
		}
	}
	f.mu.Unlock()
	for _, in := range inodes {
		f.notify("content", in.NotifyContent(0, 0))
	}
	for _, e := range entries {
		f.notify("entry", e.dir.NotifyEntry(e.name))
	}
}

// notify logs a failed cache invalidation. ENOENT only means that the kernel had nothing
// cached.
func (f *fsys) notify(what string, e syscall.Errno) {
	if e != 0 && e != syscall.ENOENT && e != syscall.ENOTDIR {
		f.log.Printf("agentfs: invalidating a kernel cache %s: %v", what, e)
	}
}
