// Package tree is a persistent, copy-on-write B+tree whose nodes are immutable blocks in the
// content-addressed store. A tree is named by the ID of its root node; updating it writes new
// nodes only along the paths to the changed keys, so two versions share every untouched
// subtree, and a diff can skip any subtree whose ID both sides share.
//
// Keys are unique byte strings in sorted order. Internal nodes hold, for every child, the
// child's first key and its ID. All leaves are at the same depth.
package tree

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/agentfs/agentfs/store"
)

// Node encoding, version 1:
//
//	byte    magic 'T'
//	byte    version 1
//	uvarint level (0 = leaf)
//	uvarint entry count
//	entries: uvarint shared-prefix length with the previous key, uvarint suffix length,
//	         suffix, uvarint value length, value
//
// In internal nodes every value is a 32-byte child ID. Prefix compression matters because
// neighbouring keys (entries of one directory, blocks of one file) share long prefixes.
const (
	nodeMagic   = 'T'
	nodeVersion = 1
)

// ErrCorruptNode reports a node that decodes badly although its hash matched, i.e. a bug or a
// block written by an incompatible version.
var ErrCorruptNode = errors.New("tree: malformed node")

type entry struct {
	key   []byte
	value []byte
}

type node struct {
	level   int
	entries []entry
	size    int // encoded size, used to decide splits and merges
}

func (n *node) leaf() bool { return n.level == 0 }

func (n *node) childID(i int) store.ID {
	var id store.ID
	copy(id[:], n.entries[i].value)
	return id
}

func entrySize(e entry) int { return len(e.key) + len(e.value) + 4 }

func encodeNode(level int, entries []entry) []byte {
	size := 16
	for _, e := range entries {
		size += entrySize(e) + 8
	}
	buf := make([]byte, 0, size)
	buf = append(buf, nodeMagic, nodeVersion)
	buf = binary.AppendUvarint(buf, uint64(level))
	buf = binary.AppendUvarint(buf, uint64(len(entries)))
	var prev []byte
	for _, e := range entries {
		shared := commonPrefix(prev, e.key)
		buf = binary.AppendUvarint(buf, uint64(shared))
		buf = binary.AppendUvarint(buf, uint64(len(e.key)-shared))
		buf = append(buf, e.key[shared:]...)
		buf = binary.AppendUvarint(buf, uint64(len(e.value)))
		buf = append(buf, e.value...)
		prev = e.key
	}
	return buf
}

func commonPrefix(a, b []byte) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// Bounds on what a node may be. Nodes come from buckets whose content can be crafted, so
// decodeNode checks them before it allocates: the node's size, then the entry count against
// the bytes left (every entry but the first takes at least 4), then each key's length and
// the total of the decoded keys (prefix compression lets a small node name long keys many
// times over).
const (
	// MaxNodeSize is the largest encoded node decodeNode accepts; nodes are split at about
	// 2*targetSize, plus one large entry.
	MaxNodeSize = 1 << 20
	// MaxKeySize is the longest key: a directory entry or xattr key is 9 bytes plus a name.
	MaxKeySize = 4 << 10
	// keyBytesPerByte bounds the decoded key bytes per encoded byte.
	keyBytesPerByte = 4
)

// decodeNode parses an encoded node. It never panics on bad input, and allocates at most a
// small multiple of len(data); the returned entries reference a private copy of data.
func decodeNode(data []byte) (*node, error) {
	if len(data) < 2 || data[0] != nodeMagic {
		return nil, fmt.Errorf("%w: bad magic", ErrCorruptNode)
	}
	if data[1] != nodeVersion {
		return nil, fmt.Errorf("%w: unknown node version %d", ErrCorruptNode, data[1])
	}
	if len(data) > MaxNodeSize {
		return nil, fmt.Errorf("%w: %d bytes, more than the %d a node may have", ErrCorruptNode, len(data), MaxNodeSize)
	}
	p := data[2:]
	level, err := uvarint(&p)
	if err != nil || level > 64 {
		return nil, fmt.Errorf("%w: bad level", ErrCorruptNode)
	}
	count, err := uvarint(&p)
	if err != nil || count > uint64(len(p)/4)+1 {
		return nil, fmt.Errorf("%w: bad count", ErrCorruptNode)
	}
	// First pass: check every entry and add up the key bytes, allocating nothing.
	var keyBytes, prevLen uint64
	q := p
	for i := uint64(0); i < count; i++ {
		shared, err1 := uvarint(&q)
		suffix, err2 := take(&q)
		_, err3 := take(&q)
		if err := errors.Join(err1, err2, err3); err != nil || shared > prevLen {
			return nil, fmt.Errorf("%w: bad entry %d", ErrCorruptNode, i)
		}
		prevLen = shared + uint64(len(suffix))
		keyBytes += prevLen
		if prevLen > MaxKeySize || keyBytes > keyBytesPerByte*uint64(len(data))+MaxKeySize {
			return nil, fmt.Errorf("%w: keys too long", ErrCorruptNode)
		}
	}
	if len(q) != 0 {
		return nil, fmt.Errorf("%w: trailing bytes", ErrCorruptNode)
	}
	n := &node{level: int(level), size: len(data)}
	p = bytes.Clone(p)
	keys := make([]byte, 0, keyBytes)
	n.entries = make([]entry, 0, count)
	var prev []byte
	for i := uint64(0); i < count; i++ {
		shared, _ := uvarint(&p)
		suffix, _ := take(&p)
		value, _ := take(&p)
		start := len(keys)
		keys = append(append(keys, prev[:shared]...), suffix...)
		key := keys[start:len(keys):len(keys)]
		if prev != nil && bytes.Compare(prev, key) >= 0 {
			return nil, fmt.Errorf("%w: keys out of order", ErrCorruptNode)
		}
		if n.level > 0 && len(value) != len(store.ID{}) {
			return nil, fmt.Errorf("%w: bad child id", ErrCorruptNode)
		}
		n.entries = append(n.entries, entry{key: key, value: value})
		prev = key
	}
	if n.level > 0 && len(n.entries) == 0 {
		return nil, fmt.Errorf("%w: empty internal node", ErrCorruptNode)
	}
	return n, nil
}

func uvarint(p *[]byte) (uint64, error) {
	v, k := binary.Uvarint(*p)
	if k <= 0 {
		return 0, ErrCorruptNode
	}
	*p = (*p)[k:]
	return v, nil
}

func take(p *[]byte) ([]byte, error) {
	n, err := uvarint(p)
	if err != nil || n > uint64(len(*p)) {
		return nil, ErrCorruptNode
	}
	b := (*p)[:n:n]
	*p = (*p)[n:]
	return b, nil
}
