// Package hostile crafts trees, objects and buckets the way an attacker could, for tests
// of agentfs against bucket content it must not trust (docs/format.md is the spec it
// follows; it shares no code with the encoders it tests).
package hostile

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"sort"
	"time"

	"github.com/klauspost/compress/s2"

	"github.com/agentfs/agentfs/backends"
	"github.com/agentfs/agentfs/store"
)

// Tree is a tree's key/value map (work/keys.go): inodes, dirents, block references.
type Tree map[string][]byte

func ino8(k byte, ino uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{k}, ino)
}

// Inode sets inode ino: mode includes the type bits; data is inline content or a symlink
// target; size is stated as given (it may lie).
func (t Tree) Inode(ino, parent uint64, name string, mode uint32, size uint64, data []byte) {
	b := []byte{'I', 1, 0}
	if data != nil && mode&0o170000 == 0o100000 {
		b[2] = 1
	}
	for _, v := range []uint64{ino, uint64(mode), 0, 0, 1, 0, size, parent} {
		b = binary.AppendUvarint(b, v)
	}
	for range 3 {
		b = binary.AppendVarint(b, time.Unix(1700000000, 0).UnixNano())
	}
	b = binary.AppendUvarint(b, uint64(len(name)))
	b = append(b, name...)
	b = binary.AppendUvarint(b, uint64(len(data)))
	t[string(ino8('i', ino))] = append(b, data...)
}

// Dirent makes name in directory parent point at child (of type mode).
func (t Tree) Dirent(parent uint64, name string, child uint64, mode uint32) {
	v := binary.BigEndian.AppendUint64(nil, child)
	t[string(append(ino8('d', parent), name...))] = append(v, byte(mode>>12))
}

// Block makes block index of ino point at id.
func (t Tree) Block(ino, index uint64, id store.ID) {
	t[string(binary.BigEndian.AppendUint64(ino8('b', ino), index))] = id[:]
}

// Leaf encodes t as one leaf node.
func (t Tree) Leaf() []byte {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var entries [][2][]byte
	for _, k := range keys {
		entries = append(entries, [2][]byte{[]byte(k), t[k]})
	}
	return Node(0, entries)
}

// Node encodes a tree node (branch/tree/node.go) with prefix-compressed keys, as given.
func Node(level int, entries [][2][]byte) []byte {
	b := []byte{'T', 1}
	b = binary.AppendUvarint(b, uint64(level))
	b = binary.AppendUvarint(b, uint64(len(entries)))
	var prev []byte
	for _, e := range entries {
		shared := 0
		for shared < len(prev) && shared < len(e[0]) && prev[shared] == e[0][shared] {
			shared++
		}
		b = binary.AppendUvarint(b, uint64(shared))
		b = binary.AppendUvarint(b, uint64(len(e[0])-shared))
		b = append(b, e[0][shared:]...)
		b = binary.AppendUvarint(b, uint64(len(e[1])))
		b = append(b, e[1]...)
		prev = e[0]
	}
	return b
}

// Commit encodes a commit (branch/commit.go).
func Commit(root store.ID, parents []store.ID, branch string) []byte {
	b := append([]byte{'C', 1}, root[:]...)
	b = binary.AppendUvarint(b, uint64(len(parents)))
	for _, p := range parents {
		b = append(b, p[:]...)
	}
	b = binary.AppendVarint(b, time.Now().UnixNano())
	for _, s := range []string{branch, "", "crafted"} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

// Object is one pack entry: its id, kind ('c', 'm', 'd') and stored form (codec byte and
// payload). Length, when not zero, is the length the index states (it may lie).
type Object struct {
	ID     store.ID
	Kind   byte
	Stored []byte
	Length uint32
}

// Raw is content stored uncompressed under its true id.
func Raw(kind byte, data []byte) Object {
	return Object{ID: store.Sum(data), Kind: kind, Stored: append([]byte{0}, data...)}
}

// Bomb is an object whose s2 payload decodes to n zero bytes (a few KB stored for
// megabytes decoded), listed under the id of that content.
func Bomb(kind byte, n int) Object {
	zero := make([]byte, n)
	return Object{ID: store.Sum(zero), Kind: kind, Stored: append([]byte{1}, s2.Encode(nil, zero)...)}
}

// Sealer encrypts what is written the way an encrypted remote does (remote.Codec): an
// attacker who holds the remote's key. nil writes plaintext.
type Sealer interface {
	PackMagic() []byte
	SealEntry(id store.ID, stored []byte) []byte
	PackName(pack []byte) store.ID
	Seal(purpose, name string, plain []byte) []byte
	Open(purpose, name string, v []byte) ([]byte, error)
}

// WritePack writes objs as one pack with its index into b; truncate > 0 cuts that many
// bytes off the end of the pack (the index still lists them).
func WritePack(ctx context.Context, b backends.Backend, objs []Object, truncate int) error {
	return WritePackSealed(ctx, b, nil, objs, truncate)
}

// WritePackSealed is WritePack into an encrypted remote (s nil: plaintext).
func WritePackSealed(ctx context.Context, b backends.Backend, s Sealer, objs []Object, truncate int) error {
	pack := []byte("AFPK\x01")
	if s != nil {
		pack = append([]byte(nil), s.PackMagic()...)
	}
	type ent struct {
		o        Object
		off, len uint64
	}
	var ents []ent
	for _, o := range objs {
		stored := o.Stored
		if s != nil {
			stored = s.SealEntry(o.ID, stored)
		}
		l := uint64(len(stored))
		if o.Length != 0 {
			l = uint64(o.Length)
		}
		ents = append(ents, ent{o, uint64(len(pack)), l})
		pack = append(pack, stored...)
	}
	id := store.Sum(pack)
	if s != nil {
		id = s.PackName(pack)
	}
	pack = pack[:len(pack)-min(truncate, len(pack)-5)]
	idx := []byte("AFIX\x01")
	idx = append(idx, id[:]...)
	idx = binary.AppendUvarint(idx, uint64(len(ents)))
	for _, e := range ents {
		idx = append(idx, e.o.ID[:]...)
		idx = append(idx, e.o.Kind)
		idx = binary.AppendUvarint(idx, e.off)
		idx = binary.AppendUvarint(idx, e.len)
	}
	sum := store.Sum(idx)
	idx = append(idx, sum[:]...)
	if s != nil {
		idx = s.Seal("index", id.String(), idx)
	}
	if err := b.Put(ctx, "packs/"+id.String(), bytes.NewReader(pack), int64(len(pack))); err != nil {
		return err
	}
	return b.Put(ctx, "index/"+id.String(), bytes.NewReader(idx), int64(len(idx)))
}

// SetRef points branch at commit in b (a raw write, as an attacker with write access would).
func SetRef(ctx context.Context, b backends.Backend, branch string, commit store.ID) error {
	return SetRefSealed(ctx, b, nil, branch, commit)
}

// SetRefSealed is SetRef into an encrypted remote (s nil: plaintext).
func SetRefSealed(ctx context.Context, b backends.Backend, s Sealer, branch string, commit store.ID) error {
	data, _ := json.Marshal(map[string]any{"commit": commit.String(), "time": time.Now().UTC(), "host": "attacker"})
	if s != nil {
		data = s.Seal("ref", branch, data)
	}
	return b.Put(ctx, "refs/heads/"+branch, bytes.NewReader(data), int64(len(data)))
}

// ReadRef returns the commit a ref names.
func ReadRef(ctx context.Context, b backends.Backend, branch string) (store.ID, error) {
	return ReadRefSealed(ctx, b, nil, branch)
}

// ReadRefSealed is ReadRef of an encrypted remote (s nil: plaintext).
func ReadRefSealed(ctx context.Context, b backends.Backend, s Sealer, branch string) (store.ID, error) {
	data, _, err := b.GetWithETag(ctx, "refs/heads/"+branch)
	if err != nil {
		return store.ID{}, err
	}
	if s != nil {
		if data, err = s.Open("ref", branch, data); err != nil {
			return store.ID{}, err
		}
	}
	var r struct{ Commit string }
	if err := json.Unmarshal(data, &r); err != nil {
		return store.ID{}, err
	}
	return store.ParseID(r.Commit)
}

// Case is one crafted branch: the objects to write (the commit last) and its head.
type Case struct {
	Name     string
	Objects  []Object
	Head     store.ID
	Truncate int // bytes cut off the pack's end
}

const (
	dirMode  = 0o40755
	fileMode = 0o100644
)

func rootTree() Tree {
	t := Tree{}
	t.Inode(1, 1, "", dirMode, 0, nil)
	return t
}

// withCommit finishes a case whose tree is one leaf.
func withCommit(name string, parent store.ID, root Object, extra ...Object) Case {
	var parents []store.ID
	if !parent.IsZero() {
		parents = []store.ID{parent}
	}
	c := Raw('c', Commit(root.ID, parents, "evil"))
	objs := append(append(extra, root), c)
	return Case{Name: name, Objects: objs, Head: c.ID}
}

// Cases returns the crafted branches, each a child of commit parent (zero: no parent).
func Cases(parent store.ID) []Case {
	var out []Case

	t := rootTree()
	t.Dirent(1, "../../escape", 2, fileMode)
	t.Dirent(1, "ok.txt", 3, fileMode)
	t.Inode(2, 1, "../../escape", fileMode, 6, []byte("pwned\n"))
	t.Inode(3, 1, "ok.txt", fileMode, 3, []byte("ok\n"))
	out = append(out, withCommit("traversal", parent, Raw('m', t.Leaf())))

	t = rootTree()
	t.Dirent(1, "a/../../../slash", 2, fileMode)
	t.Inode(2, 1, "a/../../../slash", fileMode, 6, []byte("pwned\n"))
	out = append(out, withCommit("slash-name", parent, Raw('m', t.Leaf())))

	// Parent links 2 -> 3 -> 2, each confirmed by a dirent.
	t = rootTree()
	t.Inode(2, 3, "a", dirMode, 0, nil)
	t.Inode(3, 2, "b", dirMode, 0, nil)
	t.Inode(4, 2, "f", fileMode, 2, []byte("x\n"))
	t.Dirent(3, "a", 2, dirMode)
	t.Dirent(2, "b", 3, dirMode)
	t.Dirent(2, "f", 4, fileMode)
	out = append(out, withCommit("parent-cycle", parent, Raw('m', t.Leaf())))

	// A directory that contains the root again.
	t = rootTree()
	t.Dirent(1, "sub", 2, dirMode)
	t.Inode(2, 1, "sub", dirMode, 0, nil)
	t.Dirent(2, "back", 1, dirMode)
	out = append(out, withCommit("dir-loop", parent, Raw('m', t.Leaf())))

	// A node over the size limit (a 2 MiB xattr value).
	t = rootTree()
	t[string(append(ino8('x', 1), "user.big"...))] = bytes.Repeat([]byte{'z'}, 2<<20)
	out = append(out, withCommit("oversized-node", parent, Raw('m', t.Leaf())))

	// A node that claims 2^40 entries.
	huge := []byte{'T', 1, 0}
	huge = binary.AppendUvarint(huge, 1<<40)
	huge = append(huge, 0, 1, 'i', 0)
	out = append(out, withCommit("huge-count", parent, Raw('m', huge)))

	// Prefix compression: 130k keys of 4 KB each from a node of under 1 MiB.
	kb := []byte{'T', 1, 0}
	kb = binary.AppendUvarint(kb, 130000)
	long := append(ino8('x', 1), bytes.Repeat([]byte{'k'}, 4000)...)
	for i := 0; i < 130000; i++ {
		shared, suffix := len(long), []byte{byte(i >> 16), byte(i >> 8), byte(i)}
		if i == 0 {
			shared, suffix = 0, append(append([]byte(nil), long...), suffix...)
		}
		kb = binary.AppendUvarint(kb, uint64(shared))
		kb = binary.AppendUvarint(kb, uint64(len(suffix)))
		kb = append(kb, suffix...)
		kb = binary.AppendUvarint(kb, 0)
	}
	out = append(out, withCommit("key-bomb", parent, Raw('m', kb)))

	// A file stating an enormous size.
	t = rootTree()
	t.Dirent(1, "big", 2, fileMode)
	t.Inode(2, 1, "big", fileMode, 1<<62, nil)
	out = append(out, withCommit("huge-size", parent, Raw('m', t.Leaf())))

	// A data block that decompresses to 16 MiB.
	bomb := Bomb('d', 16<<20)
	t = rootTree()
	t.Dirent(1, "bomb", 2, fileMode)
	t.Inode(2, 1, "bomb", fileMode, 64<<10, nil)
	t.Block(2, 0, bomb.ID)
	out = append(out, withCommit("decompression-bomb", parent, Raw('m', t.Leaf()), bomb))

	// The pack is cut short: the last objects (root node, commit) are incomplete.
	t = rootTree()
	t.Dirent(1, "f", 2, fileMode)
	t.Inode(2, 1, "f", fileMode, 2, []byte("f\n"))
	c := withCommit("truncated", parent, Raw('m', t.Leaf()))
	c.Truncate = 40
	out = append(out, c)

	// The index states wrong lengths for the root node.
	t = rootTree()
	t.Dirent(1, "g", 2, fileMode)
	t.Inode(2, 1, "g", fileMode, 2, []byte("g\n"))
	root := Raw('m', t.Leaf())
	root.Length = uint32(len(root.Stored)) - 7
	out = append(out, withCommit("wrong-size", parent, root))

	// An internal node whose child is not one level below it.
	t = rootTree()
	leaf := Raw('m', t.Leaf())
	mid := Raw('m', Node(2, [][2][]byte{{[]byte("i"), leaf.ID[:]}}))
	out = append(out, withCommit("wrong-level", parent, mid, leaf))
	return out
}
