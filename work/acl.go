package work

import (
	"context"
	"syscall"

	"github.com/agentfs/agentfs/internal/posixacl"
)

// POSIX ACLs are xattrs (system.posix_acl_access, system.posix_acl_default) that the
// workspace keeps consistent with the mode as ext4 does (the kernel's fs/posix_acl.c):
//   - setting an access ACL sets the mode's permission bits from it (the group bits from its
//     mask), and an ACL that says no more than the mode is not stored;
//   - chmod rewrites the access ACL's owner, mask (or group) and other entries;
//   - a node created in a directory with a default ACL takes it as its access ACL masked by
//     the create mode, with no umask; a directory also takes it as its default ACL.
// The kernel enforces ACLs (FUSE's POSIX_ACL capability); the workspace only stores them.

// XattrKillSGID, in SetXattr's flags, clears the set-group-id bit when an access ACL is set
// (the caller is neither in the file's group nor privileged; the kernel decides).
const XattrKillSGID = 1 << 16

// setACL sets or (with an empty ACL) removes one of the ACL xattrs.
func (ws *Workspace) setACL(ctx context.Context, ino uint64, name string, value []byte, flags uint32) error {
	acl, err := posixacl.Parse(value)
	if err != nil {
		return syscall.EINVAL
	}
	return ws.inodeChange(ctx, ino, func(t *Txn, n *Inode) error {
		k := xattrKey(ino, name)
		if name == posixacl.Default {
			if !n.IsDir() {
				if acl == nil {
					return nil
				}
				return syscall.EACCES
			}
			if acl == nil {
				return t.del(k)
			}
			return t.set(k, acl.Encode())
		}
		if acl == nil {
			return t.del(k)
		}
		perm, equiv := acl.Mode()
		n.Mode = n.Mode&^0o777 | perm
		if flags&XattrKillSGID != 0 {
			n.Mode &^= syscall.S_ISGID
		}
		if equiv {
			return t.del(k)
		}
		return t.set(k, acl.Encode())
	})
}

// removeACL removes an ACL xattr; the mode stays. Removing one that is not there succeeds,
// as on ext4 (`setfacl -k` on a directory without a default ACL).
func (ws *Workspace) removeACL(ctx context.Context, ino uint64, name string) error {
	return ws.inodeChange(ctx, ino, func(t *Txn, n *Inode) error { return t.del(xattrKey(ino, name)) })
}

// chmodACL rewrites n's access ACL, if it has one, after its mode changed.
func chmodACL(ctx context.Context, t *Txn, n *Inode) error {
	k := xattrKey(n.Ino, posixacl.Access)
	v, ok, err := t.get(ctx, k)
	if err != nil || !ok {
		return err
	}
	acl, err := posixacl.Parse(v)
	if err != nil || acl == nil {
		return nil // not written by setACL (an old or damaged tree): leave it
	}
	return t.set(k, acl.Chmod(n.Mode).Encode())
}

// inheritACL applies parent's default ACL to the new node n (not yet stored), or the umask
// when parent has none. Symlinks take neither (their mode is always 0777).
func inheritACL(ctx context.Context, t *Txn, parent uint64, n *Inode, umask uint32) error {
	if n.IsSymlink() {
		return nil
	}
	v, ok, err := t.get(ctx, xattrKey(parent, posixacl.Default))
	if err != nil {
		return err
	}
	var def posixacl.ACL
	if ok {
		def, _ = posixacl.Parse(v)
	}
	if def == nil {
		n.Mode &^= umask & 0o777
		return nil
	}
	mode, access := def.Inherit(n.Mode)
	n.Mode = mode
	if access != nil {
		if err := t.set(xattrKey(n.Ino, posixacl.Access), access.Encode()); err != nil {
			return err
		}
	}
	if n.IsDir() {
		return t.set(xattrKey(n.Ino, posixacl.Default), def.Encode())
	}
	return nil
}
