package fs

import (
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/agentfs/agentfs/internal/posixacl"
	"github.com/agentfs/agentfs/work"
)

// POSIX ACLs. The mount asks for FUSE's POSIX_ACL capability: the kernel then caches and
// enforces ACLs (reading them with GETXATTR) and passes setfacl's xattrs through; the
// workspace keeps them consistent with the mode (work/acl.go). Two more capabilities go
// with it:
//   - DONT_MASK: the kernel sends a new node's mode without the umask and the umask beside
//     it, because with a default ACL on the parent the umask does not apply;
//   - SETXATTR_EXT: setting an access ACL says whether the set-group-id bit must go.
//
// go-fuse's node API passes neither the umask nor the extended setxattr flags, so aclFS
// carries them to the node inside values it does pass: the umask in the mode's bits above
// the file type, the flag as work.XattrKillSGID.
const aclCapabilities = fuse.CAP_DONT_MASK | fuse.CAP_SETXATTR_EXT

const umaskShift = 16

type aclFS struct {
	fuse.RawFileSystem
}

func withUmask(mode, umask uint32) uint32 { return mode&0xffff | (umask&0o777)<<umaskShift }

// splitUmask undoes withUmask.
func splitUmask(mode uint32) (uint32, uint32) { return mode & 0xffff, mode >> umaskShift & 0o777 }

func (f *aclFS) Mkdir(c <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	in.Mode = withUmask(in.Mode, in.Umask)
	return f.RawFileSystem.Mkdir(c, in, name, out)
}

func (f *aclFS) Mknod(c <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	in.Mode = withUmask(in.Mode, in.Umask)
	return f.RawFileSystem.Mknod(c, in, name, out)
}

func (f *aclFS) Create(c <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	in.Mode = withUmask(in.Mode, in.Umask)
	return f.RawFileSystem.Create(c, in, name, out)
}

func (f *aclFS) SetXAttr(c <-chan struct{}, in *fuse.SetXAttrIn, attr string, data []byte) fuse.Status {
	in.Flags &^= work.XattrKillSGID
	if in.SetXAttrFlags&fuse.SETXATTR_ACL_KILL_SGID != 0 {
		in.Flags |= work.XattrKillSGID
	}
	return f.RawFileSystem.SetXAttr(c, in, attr, data)
}

// mapACL translates the named entries of an ACL xattr between stored and shown identities
// on a mount with --owner (toStored: as the caller wrote it); other values pass unchanged.
func (f *fsys) mapACL(name string, v []byte, toStored bool) ([]byte, error) {
	if f.ids == nil || !posixacl.IsName(name) {
		return v, nil
	}
	acl, err := posixacl.Parse(v)
	if err != nil || acl == nil {
		return v, err
	}
	uid, gid := f.ids.shownUID, f.ids.shownGID
	if toStored {
		uid, gid = f.ids.storedUID, f.ids.storedGID
	}
	return acl.MapIDs(uid, gid).Encode(), nil
}
