// Package transfer copies trees between a local directory and a branch: import makes a
// branch equal to a directory, export writes a version out as a new directory.
package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/agentfs/agentfs/branch"
)

// chunk is how much file content moves per read or write call.
const chunk = 1 << 20

// Stats counts what an import did.
type Stats struct {
	Files     int   `json:"files"`
	Dirs      int   `json:"dirs"`
	Symlinks  int   `json:"symlinks"`
	Links     int   `json:"links"`
	Written   int64 `json:"written_bytes"` // bytes of content written (unchanged files cost none)
	Unchanged int   `json:"unchanged"`
	Removed   int   `json:"removed"`
}

type importer struct {
	ctx   context.Context
	ws    *branch.Workspace
	links map[[2]uint64]uint64 // source (dev, ino) -> inode in the branch
	stats Stats
	buf   []byte
	meter meter
}

// ImportOptions configure ImportWith.
type ImportOptions struct {
	Progress func(Progress) // told how far the import is (nil: no reports, and no scan)
}

// Import makes the working state of ws equal to the directory src: files, directories,
// symlinks, hard links, modes, owners, mtimes and xattrs. Files whose size and mtime match
// are left alone, so re-importing an unchanged tree writes nothing.
func Import(ctx context.Context, ws *branch.Workspace, src string) (Stats, error) {
	return ImportWith(ctx, ws, src, ImportOptions{})
}

// ImportWith is Import with options.
func ImportWith(ctx context.Context, ws *branch.Workspace, src string, o ImportOptions) (Stats, error) {
	fi, err := os.Lstat(src)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Stats{}, fmt.Errorf("import: %s does not exist", src)
		}
		return Stats{}, fmt.Errorf("import: %w", err)
	}
	if !fi.IsDir() {
		return Stats{}, fmt.Errorf("import: %s is not a directory", src)
	}
	im := &importer{ctx: ctx, ws: ws, links: map[[2]uint64]uint64{}, buf: make([]byte, chunk),
		meter: meter{f: o.Progress, phase: PhaseImport}}
	im.meter.scanDir(src)
	if err := im.syncDir(src, branch.RootIno); err != nil {
		return im.stats, err
	}
	if err := im.syncAttrs(src, fi, branch.RootIno); err != nil {
		return im.stats, err
	}
	return im.stats, nil
}

func (im *importer) syncDir(dir string, ino uint64) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	want := map[string]bool{}
	for _, e := range entries {
		want[e.Name()] = true
	}
	existing := map[string]branch.DirEntry{}
	if err := im.ws.ReadDir(im.ctx, ino, "", func(e branch.DirEntry) error {
		existing[e.Name] = e
		return nil
	}); err != nil {
		return err
	}
	var stale []string
	for name := range existing {
		if !want[name] {
			stale = append(stale, name)
		}
	}
	sort.Strings(stale)
	for _, name := range stale {
		if err := im.removeAll(ino, name); err != nil {
			return err
		}
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		fi, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		cur, exists := existing[e.Name()]
		if exists && cur.Mode != uint32(fileMode(fi))&syscall.S_IFMT {
			if err := im.removeAll(ino, e.Name()); err != nil {
				return err
			}
			exists = false
		}
		child, err := im.syncEntry(p, fi, ino, e.Name(), cur.Ino, exists)
		if err != nil {
			return fmt.Errorf("import %s: %w", p, err)
		}
		if err := im.syncAttrs(p, fi, child); err != nil {
			return fmt.Errorf("import %s: %w", p, err)
		}
	}
	return nil
}

// syncEntry makes the entry name in dir match the source file and returns its inode.
func (im *importer) syncEntry(p string, fi os.FileInfo, dir uint64, name string, ino uint64, exists bool) (uint64, error) {
	st := fi.Sys().(*syscall.Stat_t)
	mode := fileMode(fi)
	attr := branch.Attr{Mode: mode, Uid: st.Uid, Gid: st.Gid, Rdev: uint32(st.Rdev)}
	switch mode & syscall.S_IFMT {
	case syscall.S_IFDIR:
		im.stats.Dirs++
		if !exists {
			n, err := im.ws.Mkdir(im.ctx, dir, name, attr)
			if err != nil {
				return 0, err
			}
			ino = n.Ino
		}
		return ino, im.syncDir(p, ino)
	case syscall.S_IFLNK:
		im.stats.Symlinks++
		target, err := os.Readlink(p)
		if err != nil {
			return 0, err
		}
		if exists {
			if cur, err := im.ws.Readlink(im.ctx, ino); err == nil && cur == target {
				return ino, nil
			}
			if err := im.ws.Unlink(im.ctx, dir, name); err != nil {
				return 0, err
			}
		}
		n, err := im.ws.Symlink(im.ctx, dir, name, target, attr)
		if err != nil {
			return 0, err
		}
		return n.Ino, nil
	}
	// Hard links: the second name of a source inode becomes a link to the first.
	key := [2]uint64{uint64(st.Dev), st.Ino}
	if st.Nlink > 1 {
		if first, ok := im.links[key]; ok {
			im.stats.Links++
			if exists && ino == first {
				return ino, nil
			}
			if exists {
				if err := im.ws.Unlink(im.ctx, dir, name); err != nil {
					return 0, err
				}
			}
			_, err := im.ws.Link(im.ctx, first, dir, name)
			return first, err
		}
	}
	im.stats.Files++
	if exists {
		n, err := im.ws.GetAttr(im.ctx, ino)
		if err != nil {
			return 0, err
		}
		linkedElsewhere := n.Nlink > 1 && st.Nlink == 1
		if n.Size == uint64(fi.Size()) && n.Mtime == fi.ModTime().UnixNano() && !linkedElsewhere {
			im.stats.Unchanged++
			im.links[key] = ino
			im.meter.add(fi.Size())
			return ino, nil
		}
		if linkedElsewhere {
			if err := im.ws.Unlink(im.ctx, dir, name); err != nil {
				return 0, err
			}
			exists = false
		}
	}
	if !exists {
		n, err := im.ws.Create(im.ctx, dir, name, attr)
		if err != nil {
			return 0, err
		}
		ino = n.Ino
	}
	im.links[key] = ino
	if mode&syscall.S_IFMT != syscall.S_IFREG {
		return ino, nil
	}
	return ino, im.copyIn(p, ino)
}

func (im *importer) copyIn(p string, ino uint64) error {
	zero := uint64(0)
	if _, err := im.ws.SetAttr(im.ctx, ino, branch.SetAttr{Size: &zero}); err != nil {
		return err
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	var off int64
	for {
		k, err := io.ReadFull(f, im.buf)
		if k > 0 {
			if _, werr := im.ws.Write(im.ctx, ino, off, im.buf[:k]); werr != nil {
				return werr
			}
			off += int64(k)
			im.stats.Written += int64(k)
			im.meter.add(int64(k))
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return im.ws.Release(im.ctx, ino) // writes the last partial block out
		}
		if err != nil {
			return err
		}
	}
}

// syncAttrs copies mode, owner, mtime and xattrs, changing only what differs.
func (im *importer) syncAttrs(p string, fi os.FileInfo, ino uint64) error {
	st := fi.Sys().(*syscall.Stat_t)
	n, err := im.ws.GetAttr(im.ctx, ino)
	if err != nil {
		return err
	}
	var a branch.SetAttr
	mode := fileMode(fi) &^ syscall.S_IFMT
	if n.Mode&^syscall.S_IFMT != mode {
		a.Mode = &mode
	}
	if n.Uid != st.Uid {
		a.Uid = &st.Uid
	}
	if n.Gid != st.Gid {
		a.Gid = &st.Gid
	}
	if mt := fi.ModTime().UnixNano(); n.Mtime != mt {
		at := time2ns(st.Atim)
		a.Mtime, a.Atime = &mt, &at
	}
	if a != (branch.SetAttr{}) {
		if _, err := im.ws.SetAttr(im.ctx, ino, a); err != nil {
			return err
		}
	}
	return im.syncXattrs(p, ino)
}

func time2ns(ts syscall.Timespec) int64 { return ts.Sec*1e9 + ts.Nsec }

func (im *importer) syncXattrs(p string, ino uint64) error {
	names, err := listXattrs(p)
	if err != nil {
		return err
	}
	have, err := im.ws.ListXattr(im.ctx, ino)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, name := range names {
		want[name] = true
		v, err := getXattr(p, name)
		if err != nil {
			return err
		}
		if cur, err := im.ws.GetXattr(im.ctx, ino, name); err == nil && string(cur) == string(v) {
			continue
		}
		if err := im.ws.SetXattr(im.ctx, ino, name, v, 0); err != nil {
			return err
		}
	}
	for _, name := range have {
		if !want[name] {
			if err := im.ws.RemoveXattr(im.ctx, ino, name); err != nil {
				return err
			}
		}
	}
	return nil
}

// removeAll deletes name in dir and everything below it.
func (im *importer) removeAll(dir uint64, name string) error {
	n, err := im.ws.Lookup(im.ctx, dir, name)
	if err != nil {
		return err
	}
	im.stats.Removed++
	if !n.IsDir() {
		return im.ws.Unlink(im.ctx, dir, name)
	}
	var children []string
	if err := im.ws.ReadDir(im.ctx, n.Ino, "", func(e branch.DirEntry) error {
		children = append(children, e.Name)
		return nil
	}); err != nil {
		return err
	}
	for _, c := range children {
		if err := im.removeAll(n.Ino, c); err != nil {
			return err
		}
	}
	return im.ws.Rmdir(im.ctx, dir, name)
}

// fileMode returns the raw st_mode of a file.
func fileMode(fi os.FileInfo) uint32 { return fi.Sys().(*syscall.Stat_t).Mode }

func listXattrs(p string) ([]string, error) {
	size, err := unix.Llistxattr(p, nil)
	if err != nil || size == 0 {
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		return nil, err
	}
	buf := make([]byte, size)
	size, err = unix.Llistxattr(p, buf)
	if err != nil {
		return nil, err
	}
	var names []string
	start := 0
	for i := 0; i < size; i++ {
		if buf[i] == 0 {
			if i > start {
				names = append(names, string(buf[start:i]))
			}
			start = i + 1
		}
	}
	return names, nil
}

func getXattr(p, name string) ([]byte, error) {
	size, err := unix.Lgetxattr(p, name, nil)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, size)
	size, err = unix.Lgetxattr(p, name, buf)
	return buf[:size], err
}
