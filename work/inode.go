package work

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"syscall"
)

// Inode is a file's attributes. Regular files of at most InlineMax bytes keep their content
// in Data (one tree entry, no block lookups); larger files keep it in 64 KiB blocks under
// 'b' keys. Symlinks keep their target in Data.
type Inode struct {
	Ino                 uint64
	Mode                uint32 // st_mode, including the file type bits
	Uid, Gid            uint32
	Nlink               uint32
	Rdev                uint32
	Size                uint64
	Atime, Mtime, Ctime int64 // nanoseconds since the epoch
	// Parent and Name are where the inode was last linked; they let a diff turn an inode
	// number into a path without scanning the tree. For a hard-linked file they name one
	// of its links.
	Parent uint64
	Name   string
	Inline bool // Data holds the content of a regular file
	Data   []byte
}

const (
	// BlockSize is the unit of file content: large enough that a 1 GiB file is 16k blocks,
	// small enough that a 4 KiB random write rewrites little.
	BlockSize = 64 << 10
	// InlineMax is the largest regular file kept inside its inode record.
	InlineMax = 2 << 10
	// maxInodeData bounds the data in a record (inline content, a symlink's target).
	maxInodeData = 64 << 10
)

func (n *Inode) IsDir() bool     { return n.Mode&syscall.S_IFMT == syscall.S_IFDIR }
func (n *Inode) IsRegular() bool { return n.Mode&syscall.S_IFMT == syscall.S_IFREG }
func (n *Inode) IsSymlink() bool { return n.Mode&syscall.S_IFMT == syscall.S_IFLNK }

// Inode record encoding, version 1: 'I', 1, flags, then uvarints ino, mode, uid, gid, nlink,
// rdev, size, parent, varints atime, mtime, ctime, then length-prefixed name and data.
const (
	inodeMagic   = 'I'
	inodeVersion = 1
	flagInline   = 1
)

var errBadInode = errors.New("branch: malformed inode record")

// ErrDamaged: a tree's content is inconsistent (a loop in parent links or directories, a bad
// name): the repository or the bucket it came from is damaged, or the tree was crafted.
var ErrDamaged = errors.New("damaged tree")

func EncodeInode(n *Inode) []byte {
	b := make([]byte, 0, 64+len(n.Name)+len(n.Data))
	flags := byte(0)
	if n.Inline {
		flags |= flagInline
	}
	b = append(b, inodeMagic, inodeVersion, flags)
	for _, v := range []uint64{n.Ino, uint64(n.Mode), uint64(n.Uid), uint64(n.Gid), uint64(n.Nlink), uint64(n.Rdev), n.Size, n.Parent} {
		b = binary.AppendUvarint(b, v)
	}
	for _, v := range []int64{n.Atime, n.Mtime, n.Ctime} {
		b = binary.AppendVarint(b, v)
	}
	b = binary.AppendUvarint(b, uint64(len(n.Name)))
	b = append(b, n.Name...)
	b = binary.AppendUvarint(b, uint64(len(n.Data)))
	return append(b, n.Data...)
}

func DecodeInode(b []byte) (*Inode, error) {
	if len(b) < 3 || b[0] != inodeMagic || b[1] != inodeVersion {
		return nil, errBadInode
	}
	n := &Inode{Inline: b[2]&flagInline != 0}
	p := b[3:]
	var u [8]uint64
	for i := range u {
		v, k := binary.Uvarint(p)
		if k <= 0 {
			return nil, errBadInode
		}
		u[i], p = v, p[k:]
	}
	if u[1] > 0xffffffff || u[2] > 0xffffffff || u[3] > 0xffffffff || u[4] > 0xffffffff || u[5] > 0xffffffff {
		return nil, errBadInode
	}
	n.Ino, n.Mode, n.Uid, n.Gid, n.Nlink, n.Rdev, n.Size, n.Parent =
		u[0], uint32(u[1]), uint32(u[2]), uint32(u[3]), uint32(u[4]), uint32(u[5]), u[6], u[7]
	var s [3]int64
	for i := range s {
		v, k := binary.Varint(p)
		if k <= 0 {
			return nil, errBadInode
		}
		s[i], p = v, p[k:]
	}
	n.Atime, n.Mtime, n.Ctime = s[0], s[1], s[2]
	for _, dst := range []*[]byte{nil, &n.Data} {
		l, k := binary.Uvarint(p)
		if k <= 0 || l > uint64(len(p)-k) {
			return nil, errBadInode
		}
		v := append([]byte(nil), p[k:k+int(l)]...)
		p = p[k+int(l):]
		if dst == nil {
			n.Name = string(v)
		} else {
			*dst = v
		}
	}
	if len(p) != 0 {
		return nil, fmt.Errorf("%w: trailing bytes", errBadInode)
	}
	if n.Inline && uint64(len(n.Data)) != n.Size {
		return nil, fmt.Errorf("%w: inline size mismatch", errBadInode)
	}
	// Records can come from a crafted bucket: sizes and names must be ones a file can have.
	switch {
	case n.Size > MaxFileSize:
		return nil, fmt.Errorf("%w: size %d is more than %d", errBadInode, n.Size, uint64(MaxFileSize))
	case len(n.Name) > MaxEntryName || strings.ContainsAny(n.Name, "/\x00"):
		return nil, fmt.Errorf("%w: bad name", errBadInode)
	case len(n.Data) > maxInodeData:
		return nil, fmt.Errorf("%w: %d bytes of inline data", errBadInode, len(n.Data))
	}
	return n, nil
}
