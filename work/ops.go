package work

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"syscall"

	"github.com/agentfs/agentfs/branch/tree"
	"github.com/agentfs/agentfs/internal/posixacl"
)

// MaxEntryName is the longest file name, as on Linux.
const MaxEntryName = 255

func CheckEntryName(name string) error {
	switch {
	case name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00"):
		return syscall.EINVAL
	case len(name) > MaxEntryName:
		return syscall.ENAMETOOLONG
	}
	return nil
}

// Attr is the owner and mode of a new file.
type Attr struct {
	Mode     uint32 // includes the file type bits
	Uid, Gid uint32
	Rdev     uint32
	// Umask is the creating process's umask. It applies only where the parent directory has
	// no default ACL (the kernel leaves it to us: FUSE's DONT_MASK).
	Umask uint32
}

// GetAttr returns an inode.
func (ws *Workspace) GetAttr(ctx context.Context, ino uint64) (*Inode, error) {
	ws.mu.RLock()
	defer ws.mu.RUnlock()
	v, ok, err := ws.get(ctx, InodeKey(ino))
	return InodeFrom(ino, v, ok, err)
}

// Lookup returns the inode called name in directory parent.
func (ws *Workspace) Lookup(ctx context.Context, parent uint64, name string) (*Inode, error) {
	ws.mu.RLock()
	defer ws.mu.RUnlock()
	ino, _, err := ws.lookupLocked(ctx, parent, name)
	if err != nil {
		return nil, err
	}
	v, ok, err := ws.get(ctx, InodeKey(ino))
	return InodeFrom(ino, v, ok, err)
}

func (ws *Workspace) lookupLocked(ctx context.Context, parent uint64, name string) (uint64, uint32, error) {
	if len(name) > MaxEntryName {
		return 0, 0, syscall.ENAMETOOLONG
	}
	v, ok, err := ws.get(ctx, DirentKey(parent, name))
	if err != nil {
		return 0, 0, err
	}
	if !ok {
		return 0, 0, syscall.ENOENT
	}
	ino, typ, ok := DecodeDirent(v)
	if !ok {
		return 0, 0, fmt.Errorf("directory %d entry %q: %w: malformed", parent, name, syscall.EIO)
	}
	return ino, typ, nil
}

// DirEntry is one entry of a directory listing.
type DirEntry struct {
	Name string
	Ino  uint64
	Mode uint32 // file type bits only
}

// Stop, returned by a ReadDir callback, ends the listing without an error.
var Stop = tree.Stop

// ReadDir lists a directory in name order, starting after the name `after` (empty: from the
// beginning), calling fn until it returns Stop or an error.
func (ws *Workspace) ReadDir(ctx context.Context, dir uint64, after string, fn func(DirEntry) error) error {
	ws.mu.RLock()
	defer ws.mu.RUnlock()
	n, err := ws.inode(ctx, dir)
	if err != nil {
		return err
	}
	if !n.IsDir() {
		return syscall.ENOTDIR
	}
	p := DirentPrefix(dir)
	start := p
	if after != "" {
		start = append(DirentKey(dir, after), 0)
	}
	return ws.scan(ctx, start, PrefixEnd(p), func(k, v []byte) error {
		ino, typ, ok := DecodeDirent(v)
		if !ok {
			return fmt.Errorf("directory %d: %w: malformed entry", dir, syscall.EIO)
		}
		name := string(k[len(p):])
		if err := CheckEntryName(name); err != nil {
			return fmt.Errorf("directory %d: entry %q is not a valid file name (the tree is damaged or crafted): %w", dir, name, syscall.EIO)
		}
		return fn(DirEntry{Name: name, Ino: ino, Mode: typ})
	})
}

// Readlink returns a symlink's target.
func (ws *Workspace) Readlink(ctx context.Context, ino uint64) (string, error) {
	n, err := ws.GetAttr(ctx, ino)
	if err != nil {
		return "", err
	}
	if !n.IsSymlink() {
		return "", syscall.EINVAL
	}
	return string(n.Data), nil
}

// newEntry creates a new inode called name in parent. Callers hold ws.mu.
func (ws *Workspace) newEntry(ctx context.Context, t *Txn, parent uint64, name string, a Attr, data []byte) (*Inode, error) {
	if err := CheckEntryName(name); err != nil {
		return nil, err
	}
	p, err := t.inode(ctx, parent)
	if err != nil {
		return nil, err
	}
	if !p.IsDir() {
		return nil, syscall.ENOTDIR
	}
	if p.Nlink == 0 {
		return nil, syscall.ENOENT // the directory was removed while open
	}
	if _, ok, err := t.get(ctx, DirentKey(parent, name)); err != nil {
		return nil, err
	} else if ok {
		return nil, syscall.EEXIST
	}
	ino, err := ws.env.AllocIno()
	if err != nil {
		return nil, err
	}
	t.created = append(t.created, ino)
	now := ws.env.Now().UnixNano()
	n := &Inode{Ino: ino, Mode: a.Mode, Uid: a.Uid, Gid: a.Gid, Rdev: a.Rdev, Nlink: 1,
		Atime: now, Mtime: now, Ctime: now, Parent: parent, Name: name}
	if err := inheritACL(ctx, t, parent, n, a.Umask); err != nil {
		return nil, err
	}
	if p.Mode&syscall.S_ISGID != 0 {
		n.Gid = p.Gid
		if n.IsDir() {
			n.Mode |= syscall.S_ISGID
		}
	}
	switch {
	case n.IsDir():
		n.Nlink = 2
		p.Nlink++
	case n.IsSymlink():
		n.Data, n.Size = data, uint64(len(data))
	case n.IsRegular():
		n.Inline = true
	}
	p.Mtime, p.Ctime = now, now
	if err := t.putInode(p); err != nil {
		return nil, err
	}
	if err := t.putInode(n); err != nil {
		return nil, err
	}
	return n, t.set(DirentKey(parent, name), EncodeDirent(ino, n.Mode))
}

func (ws *Workspace) createEntry(ctx context.Context, parent uint64, name string, a Attr, data []byte) (*Inode, error) {
	if err := ws.env.Store.CheckSpace(); err != nil {
		return nil, err
	}
	defer ws.env.Op()()
	ws.mu.Lock()
	defer ws.mu.Unlock()
	t, err := ws.begin()
	if err != nil {
		return nil, err
	}
	n, err := ws.newEntry(ctx, t, parent, name, a, data)
	if err != nil {
		t.abort()
		return nil, err
	}
	if err := t.commit(false); err != nil {
		return nil, err
	}
	return n, nil
}

// capabilityXattr is the extended attribute the kernel reads before each write.
const capabilityXattr = "security.capability"

// Create makes a file (regular, device, fifo or socket, by a.Mode) called name in parent.
// It fails with EEXIST if the name is taken.
func (ws *Workspace) Create(ctx context.Context, parent uint64, name string, a Attr) (*Inode, error) {
	if a.Mode&syscall.S_IFMT == 0 {
		a.Mode |= syscall.S_IFREG
	}
	if a.Mode&syscall.S_IFMT == syscall.S_IFDIR || a.Mode&syscall.S_IFMT == syscall.S_IFLNK {
		return nil, syscall.EINVAL
	}
	return ws.create(ctx, parent, name, a, nil)
}

// Mkdir makes a directory.
func (ws *Workspace) Mkdir(ctx context.Context, parent uint64, name string, a Attr) (*Inode, error) {
	a.Mode = a.Mode&^syscall.S_IFMT | syscall.S_IFDIR
	return ws.create(ctx, parent, name, a, nil)
}

// Symlink makes a symbolic link to target.
func (ws *Workspace) Symlink(ctx context.Context, parent uint64, name, target string, a Attr) (*Inode, error) {
	if len(target) > 4096 {
		return nil, syscall.ENAMETOOLONG
	}
	a.Mode = syscall.S_IFLNK | 0o777
	return ws.create(ctx, parent, name, a, []byte(target))
}

// Link makes name in parent another link to inode ino.
func (ws *Workspace) Link(ctx context.Context, ino, parent uint64, name string) (*Inode, error) {
	defer ws.env.Op()()
	if err := CheckEntryName(name); err != nil {
		return nil, err
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	t, err := ws.begin()
	if err != nil {
		return nil, err
	}
	defer t.abort()
	n, err := t.inode(ctx, ino)
	if err != nil {
		return nil, err
	}
	if n.IsDir() {
		return nil, syscall.EPERM
	}
	if n.Nlink == 0 {
		return nil, syscall.ENOENT
	}
	p, err := t.inode(ctx, parent)
	if err != nil {
		return nil, err
	}
	if !p.IsDir() {
		return nil, syscall.ENOTDIR
	}
	if _, ok, err := t.get(ctx, DirentKey(parent, name)); err != nil {
		return nil, err
	} else if ok {
		return nil, syscall.EEXIST
	}
	now := ws.env.Now().UnixNano()
	n.Nlink++
	n.Ctime = now
	p.Mtime, p.Ctime = now, now
	for _, err := range []error{t.putInode(n), t.putInode(p), t.set(DirentKey(parent, name), EncodeDirent(ino, n.Mode))} {
		if err != nil {
			return nil, err
		}
	}
	return n, t.commit(false)
}

// Unlink removes a non-directory entry. The inode goes when its last link goes and no
// handle has it open.
func (ws *Workspace) Unlink(ctx context.Context, parent uint64, name string) error {
	return ws.remove(ctx, parent, name, false)
}

// Rmdir removes an empty directory.
func (ws *Workspace) Rmdir(ctx context.Context, parent uint64, name string) error {
	return ws.remove(ctx, parent, name, true)
}

func (ws *Workspace) remove(ctx context.Context, parent uint64, name string, dir bool) error {
	defer ws.env.Op()()
	if name == "." {
		return syscall.EINVAL
	}
	if name == ".." {
		return syscall.ENOTEMPTY
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	t, err := ws.begin()
	if err != nil {
		return err
	}
	defer t.abort()
	ino, _, err := ws.lookupLocked(ctx, parent, name)
	if err != nil {
		return err
	}
	n, err := t.inode(ctx, ino)
	if err != nil {
		return err
	}
	if dir != n.IsDir() {
		if dir {
			return syscall.ENOTDIR
		}
		return syscall.EISDIR
	}
	p, err := t.inode(ctx, parent)
	if err != nil {
		return err
	}
	if err := ws.unlinkLocked(ctx, t, p, name, n); err != nil {
		return err
	}
	return t.commit(false)
}

// unlinkLocked removes the entry name (for inode n) from directory p and updates both.
func (ws *Workspace) unlinkLocked(ctx context.Context, t *Txn, p *Inode, name string, n *Inode) error {
	now := ws.env.Now().UnixNano()
	if n.IsDir() {
		empty, err := ws.emptyDir(ctx, t, n.Ino)
		if err != nil {
			return err
		}
		if !empty {
			return syscall.ENOTEMPTY
		}
		p.Nlink--
		n.Nlink = 0
	} else {
		n.Nlink--
	}
	p.Mtime, p.Ctime = now, now
	n.Ctime = now
	if err := t.del(DirentKey(p.Ino, name)); err != nil {
		return err
	}
	if err := t.putInode(p); err != nil {
		return err
	}
	if n.Nlink == 0 && !ws.isOpen(n.Ino) {
		return ws.removeInode(ctx, t, n.Ino)
	}
	return t.putInode(n)
}

func (ws *Workspace) emptyDir(ctx context.Context, t *Txn, ino uint64) (bool, error) {
	if entries, fresh := ws.fresh.list(ino, KindDirent); fresh { // no scan needed (fresh.go)
		for _, k := range entries {
			if sv, ok := t.staged[k]; !ok || sv != nil {
				return false, nil
			}
		}
		return true, nil
	}
	empty := true
	p := DirentPrefix(ino)
	err := ws.scan(ctx, p, PrefixEnd(p), func(k, v []byte) error {
		if sv, ok := t.staged[string(k)]; ok && sv == nil {
			return nil // deleted earlier in this operation
		}
		empty = false
		return tree.Stop
	})
	return empty, err
}

// Rename flags, as in renameat2(2).
const (
	RenameNoReplace = 1
	RenameExchange  = 2
)

// Rename moves oldName in oldParent to newName in newParent, replacing a compatible target.
func (ws *Workspace) Rename(ctx context.Context, oldParent uint64, oldName string, newParent uint64, newName string, flags uint32) error {
	defer ws.env.Op()()
	if err := CheckEntryName(newName); err != nil {
		return err
	}
	if flags&^(RenameNoReplace|RenameExchange) != 0 || flags == RenameNoReplace|RenameExchange {
		return syscall.EINVAL
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	t, err := ws.begin()
	if err != nil {
		return err
	}
	defer t.abort()
	srcIno, _, err := ws.lookupLocked(ctx, oldParent, oldName)
	if err != nil {
		return err
	}
	src, err := t.inode(ctx, srcIno)
	if err != nil {
		return err
	}
	dstIno, _, err := ws.lookupLocked(ctx, newParent, newName)
	exists := err == nil
	if err != nil && err != syscall.ENOENT {
		return err
	}
	if oldParent == newParent && oldName == newName {
		return nil
	}
	if exists && flags&RenameNoReplace != 0 {
		return syscall.EEXIST
	}
	if !exists && flags&RenameExchange != 0 {
		return syscall.ENOENT
	}
	if exists && dstIno == srcIno && flags&RenameExchange == 0 {
		return nil // both names are links to one inode: POSIX says do nothing
	}
	np, err := t.inode(ctx, newParent)
	if err != nil {
		return err
	}
	if !np.IsDir() {
		return syscall.ENOTDIR
	}
	if src.IsDir() {
		if err := ws.checkNotAncestor(ctx, t, srcIno, newParent); err != nil {
			return err
		}
	}
	now := ws.env.Now().UnixNano()
	if flags&RenameExchange != 0 {
		dst, err := t.inode(ctx, dstIno)
		if err != nil {
			return err
		}
		if dst.IsDir() {
			if err := ws.checkNotAncestor(ctx, t, dstIno, oldParent); err != nil {
				return err
			}
		}
		if err := ws.exchange(ctx, t, oldParent, oldName, src, newParent, newName, dst, now); err != nil {
			return err
		}
		return t.commit(false)
	}
	if exists {
		dst, err := t.inode(ctx, dstIno)
		if err != nil {
			return err
		}
		switch {
		case src.IsDir() && !dst.IsDir():
			return syscall.ENOTDIR
		case !src.IsDir() && dst.IsDir():
			return syscall.EISDIR
		}
		if err := ws.unlinkLocked(ctx, t, np, newName, dst); err != nil {
			return err
		}
	}
	op, err := t.inode(ctx, oldParent)
	if err != nil {
		return err
	}
	if oldParent == newParent {
		op = np
	}
	if err := t.del(DirentKey(oldParent, oldName)); err != nil {
		return err
	}
	if err := t.set(DirentKey(newParent, newName), EncodeDirent(srcIno, src.Mode)); err != nil {
		return err
	}
	if src.IsDir() && oldParent != newParent {
		op.Nlink--
		np.Nlink++
	}
	op.Mtime, op.Ctime, np.Mtime, np.Ctime = now, now, now, now
	src.Parent, src.Name, src.Ctime = newParent, newName, now
	for _, n := range []*Inode{op, np, src} {
		if err := t.putInode(n); err != nil {
			return err
		}
	}
	return t.commit(false)
}

func (ws *Workspace) exchange(ctx context.Context, t *Txn, op uint64, on string, src *Inode, np uint64, nn string, dst *Inode, now int64) error {
	if err := t.set(DirentKey(op, on), EncodeDirent(dst.Ino, dst.Mode)); err != nil {
		return err
	}
	if err := t.set(DirentKey(np, nn), EncodeDirent(src.Ino, src.Mode)); err != nil {
		return err
	}
	src.Parent, src.Name, src.Ctime = np, nn, now
	dst.Parent, dst.Name, dst.Ctime = op, on, now
	parents := []*Inode{}
	opi, err := t.inode(ctx, op)
	if err != nil {
		return err
	}
	parents = append(parents, opi)
	if np != op {
		npi, err := t.inode(ctx, np)
		if err != nil {
			return err
		}
		// A directory moving between parents moves its ".." link with it.
		if src.IsDir() != dst.IsDir() {
			if src.IsDir() {
				opi.Nlink--
				npi.Nlink++
			} else {
				opi.Nlink++
				npi.Nlink--
			}
		}
		parents = append(parents, npi)
	}
	for _, n := range append(parents, src, dst) {
		n.Ctime = now
		if n == parents[0] || (len(parents) > 1 && n == parents[1]) {
			n.Mtime = now
		}
		if err := t.putInode(n); err != nil {
			return err
		}
	}
	return nil
}

// checkNotAncestor fails with EINVAL if dir is target or one of its ancestors (a directory
// may not move into itself).
func (ws *Workspace) checkNotAncestor(ctx context.Context, t *Txn, dir, target uint64) error {
	for ino := target; ; {
		if ino == dir {
			return syscall.EINVAL
		}
		if ino == RootIno {
			return nil
		}
		n, err := t.inode(ctx, ino)
		if err != nil {
			return err
		}
		if n.Parent == ino {
			return nil
		}
		ino = n.Parent
	}
}

// SetAttr changes the attributes named by the non-nil fields.
type SetAttr struct {
	Mode         *uint32 // permission bits (the file type is kept)
	Uid, Gid     *uint32
	Size         *uint64
	Atime, Mtime *int64
	// Since, if set, is the generation of the descriptor a truncate came through (WriteSince).
	Since *uint64
}

// SetAttr applies a, updating ctime.
func (ws *Workspace) SetAttr(ctx context.Context, ino uint64, a SetAttr) (*Inode, error) {
	defer ws.env.Op()()
	ws.mu.Lock()
	defer ws.mu.Unlock()
	t, err := ws.begin()
	if err != nil {
		return nil, err
	}
	defer t.abort()
	n, err := t.inode(ctx, ino)
	if err != nil {
		return nil, err
	}
	now := ws.env.Now().UnixNano()
	if a.Size != nil {
		if a.Since != nil && *a.Since != ws.gen {
			return nil, fmt.Errorf("%w: the branch was rolled back after this file was opened; open it again", syscall.ESTALE)
		}
		if n.IsDir() {
			return nil, syscall.EISDIR
		}
		if !n.IsRegular() {
			return nil, syscall.EINVAL
		}
		if err := ws.truncateLocked(ctx, t, n, *a.Size); err != nil {
			return nil, err
		}
		n.Mtime = now
	}
	if a.Mode != nil {
		n.Mode = n.Mode&syscall.S_IFMT | *a.Mode&^syscall.S_IFMT
		if err := chmodACL(ctx, t, n); err != nil {
			return nil, err
		}
	}
	if a.Uid != nil {
		n.Uid = *a.Uid
	}
	if a.Gid != nil {
		n.Gid = *a.Gid
	}
	if (a.Uid != nil || a.Gid != nil) && !n.IsDir() {
		n.Mode &^= syscall.S_ISUID // chown drops set-user-id, as on Linux
		if n.Mode&0o010 != 0 {
			n.Mode &^= syscall.S_ISGID
		}
	}
	if a.Atime != nil {
		n.Atime = *a.Atime
	}
	if a.Mtime != nil {
		n.Mtime = *a.Mtime
	}
	n.Ctime = now
	if err := t.putInode(n); err != nil {
		return nil, err
	}
	return n, t.commit(false)
}

// Xattr flags, as in setxattr(2).
const (
	XattrCreate  = 1
	XattrReplace = 2
)

// GetXattr returns an extended attribute; ENODATA if it is not set.
func (ws *Workspace) GetXattr(ctx context.Context, ino uint64, name string) ([]byte, error) {
	ws.mu.RLock()
	defer ws.mu.RUnlock()
	if _, err := ws.inode(ctx, ino); err != nil {
		return nil, err
	}
	v, ok, err := ws.get(ctx, xattrKey(ino, name))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, syscall.ENODATA
	}
	return bytes.Clone(v), nil
}

// ListXattr returns the names of a file's extended attributes.
func (ws *Workspace) ListXattr(ctx context.Context, ino uint64) ([]string, error) {
	ws.mu.RLock()
	defer ws.mu.RUnlock()
	if _, err := ws.inode(ctx, ino); err != nil {
		return nil, err
	}
	var names []string
	p := XattrPrefix(ino)
	err := ws.scan(ctx, p, PrefixEnd(p), func(k, v []byte) error {
		names = append(names, string(k[len(p):]))
		return nil
	})
	return names, err
}

// SetXattr sets an extended attribute; flags are XattrCreate or XattrReplace.
func (ws *Workspace) SetXattr(ctx context.Context, ino uint64, name string, value []byte, flags uint32) error {
	if name == "" || len(name) > 255 {
		return syscall.ERANGE
	}
	if len(value) > 64<<10 {
		return syscall.E2BIG
	}
	if posixacl.IsName(name) {
		return ws.setACL(ctx, ino, name, value, flags)
	}
	return ws.xattrChange(ctx, ino, name, func(exists bool) ([]byte, error) {
		switch {
		case exists && flags&XattrCreate != 0:
			return nil, syscall.EEXIST
		case !exists && flags&XattrReplace != 0:
			return nil, syscall.ENODATA
		}
		return bytes.Clone(value), nil
	})
}

// RemoveXattr removes an extended attribute; ENODATA if it is not set.
func (ws *Workspace) RemoveXattr(ctx context.Context, ino uint64, name string) error {
	if posixacl.IsName(name) {
		return ws.removeACL(ctx, ino, name)
	}
	return ws.xattrChange(ctx, ino, name, func(exists bool) ([]byte, error) {
		if !exists {
			return nil, syscall.ENODATA
		}
		return nil, nil
	})
}

func (ws *Workspace) xattrChange(ctx context.Context, ino uint64, name string, next func(exists bool) ([]byte, error)) error {
	return ws.inodeChange(ctx, ino, func(t *Txn, n *Inode) error {
		k := xattrKey(ino, name)
		_, exists, err := t.get(ctx, k)
		if err != nil {
			return err
		}
		v, err := next(exists)
		if err != nil {
			return err
		}
		if v == nil {
			return t.del(k)
		}
		return t.set(k, v)
	})
}

// inodeChange runs change on ino's inode in one transaction, then sets its ctime and commits
// (xattr and ACL changes).
func (ws *Workspace) inodeChange(ctx context.Context, ino uint64, change func(*Txn, *Inode) error) error {
	defer ws.env.Op()()
	ws.mu.Lock()
	defer ws.mu.Unlock()
	t, err := ws.begin()
	if err != nil {
		return err
	}
	defer t.abort()
	n, err := t.inode(ctx, ino)
	if err != nil {
		return err
	}
	if err := change(t, n); err != nil {
		return err
	}
	n.Ctime = ws.env.Now().UnixNano()
	if err := t.putInode(n); err != nil {
		return err
	}
	return t.commit(false)
}

// Open records a reference to ino (an open handle, or the kernel knowing the inode), so
// that unlinking it keeps its content until the last Release.
func (ws *Workspace) Open(ino uint64) {
	ws.openMu.Lock()
	ws.open[ino]++
	ws.openMu.Unlock()
}

func (ws *Workspace) isOpen(ino uint64) bool {
	ws.openMu.Lock()
	defer ws.openMu.Unlock()
	return ws.open[ino] > 0
}

// Release drops a reference taken by Open. The last one writes the file's buffered data out,
// or removes the inode if it was unlinked. Other Releases cost a map update.
func (ws *Workspace) Release(ctx context.Context, ino uint64) error {
	ws.openMu.Lock()
	if ws.open[ino] > 0 {
		ws.open[ino]--
	}
	last := ws.open[ino] == 0
	if last {
		delete(ws.open, ino)
	}
	ws.openMu.Unlock()
	if !last || ws.readOnly {
		return nil
	}
	defer ws.env.Op()()
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.isOpen(ino) {
		return nil // opened again meanwhile
	}
	t, err := ws.begin()
	if err != nil {
		return err
	}
	defer t.abort()
	n, err := t.inode(ctx, ino)
	if err == syscall.ENOENT {
		return nil // gone, e.g. after a rollback
	}
	if err != nil {
		return err
	}
	if n.Nlink != 0 {
		return nil // nothing is buffered: every write is in the overlay already
	}
	if err := ws.removeInode(ctx, t, ino); err != nil {
		return err
	}
	return t.commit(false)
}

// FlushFile is what a close asks of the workspace: nothing, since every write reached the
// write-ahead log before it returned. (Errors of failed writes are reported by the FUSE
// layer's per-file error sequence.)
func (ws *Workspace) FlushFile(ctx context.Context, ino uint64) error { return nil }

// create makes a new inode, within the branch's quota (Env.Admit).
func (ws *Workspace) create(ctx context.Context, parent uint64, name string, a Attr, data []byte) (*Inode, error) {
	done, err := ws.admit(ctx, Usage{Bytes: int64(len(data)), Inodes: 1})
	if err != nil {
		return nil, err
	}
	n, err := ws.createEntry(ctx, parent, name, a, data)
	done(err == nil)
	return n, err
}

func noop(bool) {}

// admit asks the repository whether the branch may grow by add (Env.Admit). It runs before
// the operation takes any lock: an exact count walks the repository.
func (ws *Workspace) admit(ctx context.Context, add Usage) (func(bool), error) {
	if ws.name == "" || ws.env.Admit == nil {
		return noop, nil
	}
	return ws.env.Admit(ctx, ws.name, add)
}

// UnlinkLocked removes entry name (inode n) from directory p in t. Callers hold the lock.
func (ws *Workspace) UnlinkLocked(ctx context.Context, t *Txn, p *Inode, name string, n *Inode) error {
	return ws.unlinkLocked(ctx, t, p, name, n)
}

// Privs says which privileges an operation drops besides file capabilities (DropPrivs).
type Privs struct {
	// SuidSgid: set-user-ID goes, and set-group-ID where group execute is set (the caller
	// lacks CAP_FSETID, or a chown).
	SuidSgid bool
	// InGroup, if set, says whether the caller is in a group (its own or a supplementary
	// one): set-group-ID without group execute also goes when the caller is not in the
	// file's group (as the kernel's setattr_should_drop_sgid).
	InGroup func(gid uint32) bool
}

// DropPrivs does to inode ino what a write, truncate or chown does on a local filesystem,
// which the kernel leaves to the daemon under FUSE_HANDLE_KILLPRIV_V2 (so that it stops
// asking for security.capability before every write): it removes the security.capability
// attribute of a regular file and drops set-user-ID and set-group-ID as p says. When there
// is nothing to drop, which is nearly always, it costs two cache lookups and writes
// nothing.
func (ws *Workspace) DropPrivs(ctx context.Context, ino uint64, p Privs) error {
	ws.mu.RLock()
	n, _, err := ws.privs(ctx, ino, p)
	ws.mu.RUnlock()
	if err != nil || n == nil {
		return err
	}
	defer ws.env.Op()()
	ws.mu.Lock()
	defer ws.mu.Unlock()
	n, hasCap, err := ws.privs(ctx, ino, p) // again: it may have changed before the lock
	if err != nil || n == nil {
		return err
	}
	t, err := ws.begin()
	if err != nil {
		return err
	}
	defer t.abort()
	if hasCap {
		if err := t.del(xattrKey(ino, capabilityXattr)); err != nil {
			return err
		}
	}
	n.Mode = p.drop(n)
	n.Ctime = ws.env.Now().UnixNano()
	if err := t.putInode(n); err != nil {
		return err
	}
	return t.commit(false)
}

// privs returns the inode if it has privileges to drop (DropPrivs), and whether it has a
// security.capability attribute. Callers hold mu.
func (ws *Workspace) privs(ctx context.Context, ino uint64, p Privs) (*Inode, bool, error) {
	n, err := ws.inode(ctx, ino)
	if err != nil || !n.IsRegular() {
		return nil, false, err
	}
	_, hasCap, err := ws.get(ctx, xattrKey(ino, capabilityXattr))
	if err != nil || (!hasCap && p.drop(n) == n.Mode) {
		return nil, false, err
	}
	return n, hasCap, nil
}

// drop returns n's mode without the set-ID bits p drops.
func (p Privs) drop(n *Inode) uint32 {
	mode := n.Mode
	if !p.SuidSgid {
		return mode
	}
	mode &^= syscall.S_ISUID
	if mode&syscall.S_IXGRP != 0 || (mode&syscall.S_ISGID != 0 && p.InGroup != nil && !p.InGroup(n.Gid)) {
		mode &^= syscall.S_ISGID
	}
	return mode
}
