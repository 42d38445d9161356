// Package posixacl reads and writes POSIX ACLs in the Linux xattr format
// (system.posix_acl_access and system.posix_acl_default) and keeps them consistent with a
// file's mode the way the kernel's fs/posix_acl.c does for ext4: an ACL's owner, mask (or
// group) and other entries are the mode's permission bits, chmod rewrites them, and a new
// file in a directory with a default ACL takes it masked by the create mode.
package posixacl

import (
	"encoding/binary"
	"errors"
	"slices"
)

// The xattr names.
const (
	Access  = "system.posix_acl_access"
	Default = "system.posix_acl_default"
)

// IsName reports whether name is one of the two ACL xattrs.
func IsName(name string) bool { return name == Access || name == Default }

// Entry tags, as in <linux/posix_acl.h>.
const (
	UserObj  = 0x01
	User     = 0x02
	GroupObj = 0x04
	Group    = 0x08
	Mask     = 0x10
	Other    = 0x20
)

const (
	version     = 2
	headerSize  = 4
	entrySize   = 8
	undefinedID = 0xffffffff
	// MaxEntries is the kernel's limit for an ACL passed through FUSE.
	MaxEntries = 1 << 15
)

// Entry is one ACL entry. ID is a uid for User, a gid for Group, and unused otherwise.
type Entry struct {
	Tag  uint16
	Perm uint16
	ID   uint32
}

// ACL is a list of entries in the kernel's order: owner, named users, owning group, named
// groups, mask, other.
type ACL []Entry

// ErrInvalid is a malformed or inconsistent ACL (EINVAL to the caller).
var ErrInvalid = errors.New("invalid POSIX ACL")

// Parse decodes and validates an xattr value. A header with no entries is an empty ACL
// (nil), which setfacl sends to remove one.
func Parse(b []byte) (ACL, error) {
	if len(b) < headerSize || binary.LittleEndian.Uint32(b) != version || (len(b)-headerSize)%entrySize != 0 {
		return nil, ErrInvalid
	}
	n := (len(b) - headerSize) / entrySize
	if n == 0 {
		return nil, nil
	}
	if n > MaxEntries {
		return nil, ErrInvalid
	}
	a := make(ACL, n)
	for i := range a {
		e := b[headerSize+i*entrySize:]
		a[i] = Entry{binary.LittleEndian.Uint16(e), binary.LittleEndian.Uint16(e[2:]), binary.LittleEndian.Uint32(e[4:])}
		if a[i].Tag != User && a[i].Tag != Group {
			a[i].ID = undefinedID
		}
	}
	if !a.valid() {
		return nil, ErrInvalid
	}
	return a, nil
}

// valid is the kernel's posix_acl_valid: the entries in order, exactly one of each
// object entry, a mask whenever there are named entries, permissions rwx at most.
func (a ACL) valid() bool {
	const done = 0
	state, needsMask := uint16(UserObj), false
	for _, e := range a {
		if e.Perm&^7 != 0 {
			return false
		}
		switch e.Tag {
		case UserObj:
			if state != UserObj {
				return false
			}
			state = User
		case User:
			if state != User || e.ID == undefinedID {
				return false
			}
			needsMask = true
		case GroupObj:
			if state != User {
				return false
			}
			state = Group
		case Group:
			if state != Group || e.ID == undefinedID {
				return false
			}
			needsMask = true
		case Mask:
			if state != Group {
				return false
			}
			state = Other
		case Other:
			if state != Other && (state != Group || needsMask) {
				return false
			}
			state = done
		default:
			return false
		}
	}
	return state == done
}

// Encode returns the xattr value of a.
func (a ACL) Encode() []byte {
	b := make([]byte, headerSize+len(a)*entrySize)
	binary.LittleEndian.PutUint32(b, version)
	for i, e := range a {
		p := b[headerSize+i*entrySize:]
		binary.LittleEndian.PutUint16(p, e.Tag)
		binary.LittleEndian.PutUint16(p[2:], e.Perm)
		binary.LittleEndian.PutUint32(p[4:], e.ID)
	}
	return b
}

// Mode returns the permission bits an access ACL gives the file (the group bits are the
// mask's when there is one), and whether the mode says all the ACL says: such an ACL is
// not stored (posix_acl_equiv_mode).
func (a ACL) Mode() (perm uint32, equiv bool) {
	equiv = true
	var mask, group uint32
	hasMask := false
	for _, e := range a {
		p := uint32(e.Perm)
		switch e.Tag {
		case UserObj:
			perm |= p << 6
		case GroupObj:
			group = p
		case Mask:
			mask, hasMask, equiv = p, true, false
		case Other:
			perm |= p
		default:
			equiv = false
		}
	}
	if hasMask {
		return perm | mask<<3, equiv
	}
	return perm | group<<3, equiv
}

// Chmod returns a copy of a with the owner, mask (or group) and other entries set from
// mode, as chmod does to an access ACL (posix_acl_chmod).
func (a ACL) Chmod(mode uint32) ACL {
	c := slices.Clone(a)
	hasMask := slices.ContainsFunc(c, func(e Entry) bool { return e.Tag == Mask })
	for i := range c {
		switch c[i].Tag {
		case UserObj:
			c[i].Perm = uint16(mode >> 6 & 7)
		case GroupObj:
			if !hasMask {
				c[i].Perm = uint16(mode >> 3 & 7)
			}
		case Mask:
			c[i].Perm = uint16(mode >> 3 & 7)
		case Other:
			c[i].Perm = uint16(mode & 7)
		}
	}
	return c
}

// Inherit applies a directory's default ACL to a new node created with permission bits
// mode (posix_acl_create_masq): it returns the node's mode and its access ACL, nil when the
// mode says all of it.
func (a ACL) Inherit(mode uint32) (uint32, ACL) {
	c := slices.Clone(a)
	equiv := true
	group, mask := -1, -1
	for i := range c {
		p := &c[i].Perm
		switch c[i].Tag {
		case UserObj:
			*p &= uint16(mode >> 6 & 7)
			mode &= uint32(*p)<<6 | ^uint32(0o700)
		case User, Group:
			equiv = false
		case GroupObj:
			group = i
		case Mask:
			mask, equiv = i, false
		case Other:
			*p &= uint16(mode & 7)
			mode &= uint32(*p) | ^uint32(0o7)
		}
	}
	g := mask
	if g < 0 {
		g = group
	}
	if g >= 0 {
		c[g].Perm &= uint16(mode >> 3 & 7)
		mode &= uint32(c[g].Perm)<<3 | ^uint32(0o70)
	}
	if equiv {
		return mode, nil
	}
	return mode, c
}

// MapIDs returns a copy of a with the named users' and groups' ids passed through uid and
// gid (an identity-mapped mount shows and stores different ids).
func (a ACL) MapIDs(uid, gid func(uint32) uint32) ACL {
	c := slices.Clone(a)
	for i := range c {
		switch c[i].Tag {
		case User:
			c[i].ID = uid(c[i].ID)
		case Group:
			c[i].ID = gid(c[i].ID)
		}
	}
	return c
}
