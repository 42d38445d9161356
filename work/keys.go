package work

import (
	"encoding/binary"

	"github.com/agentfs/agentfs/internal/kv"
)

// Keys of a filesystem tree. A version of a tree is one sorted map (package tree) holding
// four kinds of entries, so that a directory of 100k entries is 100k keys spread over many
// tree leaves, not one object that must be rewritten whole:
//
//	'i' ino                  -> inode record (attributes; inline data or symlink target)
//	'd' parent-ino name      -> dirent (child ino, file type)
//	'x' ino name             -> xattr value
//	'b' ino block-index      -> block ID of that 64 KiB block (absent = hole)
//
// Overlays also hold working pages, which never enter a tree (data.go):
//
//	'p' ino page-index       -> the page's bytes, trailing zeros dropped
//
// Integers are big-endian so that keys sort by number.
const (
	KindInode  = 'i'
	KindDirent = 'd'
	KindXattr  = 'x'
	KindBlock  = 'b'
	KindPage   = 'p'
)

// RootIno is the inode number of every tree's root directory.
const RootIno = 1

func InodeKey(ino uint64) []byte {
	k := make([]byte, 9)
	k[0] = KindInode
	binary.BigEndian.PutUint64(k[1:], ino)
	return k
}

func DirentKey(parent uint64, name string) []byte {
	k := make([]byte, 9, 9+len(name))
	k[0] = KindDirent
	binary.BigEndian.PutUint64(k[1:], parent)
	return append(k, name...)
}

func DirentPrefix(parent uint64) []byte { return DirentKey(parent, "") }

func xattrKey(ino uint64, name string) []byte {
	k := make([]byte, 9, 9+len(name))
	k[0] = KindXattr
	binary.BigEndian.PutUint64(k[1:], ino)
	return append(k, name...)
}

func XattrPrefix(ino uint64) []byte { return xattrKey(ino, "") }

func BlockKey(ino, index uint64) []byte {
	k := make([]byte, 17)
	k[0] = KindBlock
	binary.BigEndian.PutUint64(k[1:], ino)
	binary.BigEndian.PutUint64(k[9:], index)
	return k
}

func BlockPrefix(ino uint64) []byte { return BlockKey(ino, 0)[:9] }

func pageKey(ino, index uint64) []byte {
	k := BlockKey(ino, index)
	k[0] = KindPage
	return k
}

func pagePrefix(ino uint64) []byte { return pageKey(ino, 0)[:9] }

// keyPage returns the page index of a page key.
func keyPage(k []byte) uint64 { return binary.BigEndian.Uint64(k[9:17]) }

// KeyIno returns the inode a key belongs to (for a dirent, the parent directory).
func KeyIno(k []byte) uint64 {
	if len(k) < 9 {
		return 0
	}
	return binary.BigEndian.Uint64(k[1:9])
}

// PrefixEnd returns the smallest key greater than every key with prefix p.
func PrefixEnd(p []byte) []byte { return kv.PrefixEnd(p) }

// dirent values: 8-byte child ino, then the file type bits of its mode (mode >> 12).
func EncodeDirent(ino uint64, mode uint32) []byte {
	v := make([]byte, 9)
	binary.BigEndian.PutUint64(v, ino)
	v[8] = byte(mode >> 12)
	return v
}

func DecodeDirent(v []byte) (ino uint64, typ uint32, ok bool) {
	if len(v) != 9 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(v), uint32(v[8]) << 12, true
}
