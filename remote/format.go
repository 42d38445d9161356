package remote

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/klauspost/compress/s2"

	"github.com/agentfs/agentfs/store"
)

// Bucket layout (docs/format.md), relative to the URL's prefix:
//
//	agentfs.json         format marker, written create-only by the first push
//	packs/<pack-id>      pack: many objects, immutable; pack-id = hash of the pack's bytes
//	index/<pack-id>      index of that pack: (object id, kind, offset, length) per object
//	refs/heads/<branch>  ref: JSON {"commit": id, ...}; changed only with PutIf
const (
	keyFormat  = "agentfs.json"
	dirPacks   = "packs/"
	dirIndex   = "index/"
	dirRefs    = "refs/heads/"
	formatName = "agentfs-remote"
	formatV    = 1
	// formatEncrypted is the version of an encrypted remote's marker (crypt.go), so that
	// versions of agentfs that do not encrypt refuse it instead of misreading it.
	formatEncrypted = 2
)

// Object kinds in packs and indexes.
const (
	KindData   = 'd' // file content block
	KindMeta   = 'm' // tree node
	KindCommit = 'c' // commit
)

// Pack format, version 1: magic "AFPK", version byte 1, then the objects back to back, each
// a codec byte (0 raw, 1 s2) and the payload. Offsets and lengths in the index point at the
// codec byte and cover codec byte + payload. Objects are verified by the hash of their
// decoded content (their id), so the pack carries no checksum of its own.
var packMagic = []byte("AFPK\x01")

// Index format, version 1: magic "AFIX", version byte 1, 32-byte pack id, uvarint count, then
// per object: 32-byte id, kind byte, uvarint offset, uvarint length; then a 32-byte hash of
// everything before it, so a damaged index is refused whole.
var indexMagic = []byte("AFIX\x01")

const (
	codecRaw = 0
	codecS2  = 1
	// maxObject bounds an object's decoded size (data blocks are 64 KiB, tree nodes at most
	// 1 MiB), checked before decompressing, so a crafted pack cannot make us allocate
	// without limit.
	maxObject = 4 << 20
)

// ErrCorrupt: an object in the bucket (pack entry or index) failed its check.
var ErrCorrupt = store.ErrRemoteCorrupt

// ErrFormat: the bucket holds something this version does not read.
var ErrFormat = errors.New("remote: unsupported bucket format")

// entry is one object in a pack.
type entry struct {
	ID     store.ID
	Kind   byte
	Offset uint64
	Length uint32
}

// encodeObject appends the stored form of data (codec byte + payload) to dst.
func encodeObject(dst, data []byte) []byte {
	if len(data) >= 64 {
		c := s2.Encode(nil, data)
		if len(c) < len(data)-len(data)/8 {
			return append(append(dst, codecS2), c...)
		}
	}
	return append(append(dst, codecRaw), data...)
}

// decodeObject returns the content of a stored object and checks it against id.
func decodeObject(id store.ID, v []byte) ([]byte, error) {
	if len(v) == 0 {
		return nil, fmt.Errorf("%w: object %s: empty", ErrCorrupt, id)
	}
	var out []byte
	switch v[0] {
	case codecRaw:
		out = bytes.Clone(v[1:])
	case codecS2:
		n, err := s2.DecodedLen(v[1:])
		if err != nil || n > maxObject {
			return nil, fmt.Errorf("%w: object %s: bad s2 header", ErrCorrupt, id)
		}
		if out, err = s2.Decode(make([]byte, n), v[1:]); err != nil {
			return nil, fmt.Errorf("%w: object %s: %v", ErrCorrupt, id, err)
		}
	default:
		return nil, fmt.Errorf("%w: object %s: unknown codec %d", ErrCorrupt, id, v[0])
	}
	if store.Sum(out) != id {
		return nil, fmt.Errorf("%w: object %s: content hash mismatch", ErrCorrupt, id)
	}
	return out, nil
}

func encodeIndex(pack store.ID, entries []entry) []byte {
	b := append([]byte(nil), indexMagic...)
	b = append(b, pack[:]...)
	b = binary.AppendUvarint(b, uint64(len(entries)))
	for _, e := range entries {
		b = append(b, e.ID[:]...)
		b = append(b, e.Kind)
		b = binary.AppendUvarint(b, e.Offset)
		b = binary.AppendUvarint(b, uint64(e.Length))
	}
	sum := store.Sum(b)
	return append(b, sum[:]...)
}

func decodeIndex(name string, b []byte) (store.ID, []entry, error) {
	bad := func(why string) (store.ID, []entry, error) {
		return store.ID{}, nil, fmt.Errorf("%w: index %s: %s", ErrCorrupt, name, why)
	}
	if len(b) < len(indexMagic)+64 || !bytes.Equal(b[:len(indexMagic)], indexMagic) {
		return bad("bad magic or too short")
	}
	body, sum := b[:len(b)-32], b[len(b)-32:]
	if store.Sum(body) != store.ID(sum) {
		return bad("checksum mismatch")
	}
	p := body[len(indexMagic):]
	pack := store.ID(p[:32])
	p = p[32:]
	n, k := binary.Uvarint(p)
	if k <= 0 || n > uint64(len(p)/34) {
		return bad("bad count")
	}
	p = p[k:]
	out := make([]entry, 0, n)
	for i := uint64(0); i < n; i++ {
		if len(p) < 33 {
			return bad("truncated")
		}
		e := entry{ID: store.ID(p[:32]), Kind: p[32]}
		p = p[33:]
		off, k1 := binary.Uvarint(p)
		if k1 <= 0 {
			return bad("bad offset")
		}
		p = p[k1:]
		l, k2 := binary.Uvarint(p)
		if k2 <= 0 || l > maxObject+16+entryExtra {
			return bad("bad length")
		}
		p = p[k2:]
		e.Offset, e.Length = off, uint32(l)
		out = append(out, e)
	}
	if len(p) != 0 {
		return bad("trailing bytes")
	}
	return pack, out, nil
}

// refRecord is the content of refs/heads/<branch> (sealed in an encrypted remote). Signer
// and Sig are set when the pushing repository has a signing key (sign.go).
type refRecord struct {
	Commit string    `json:"commit"`
	Time   time.Time `json:"time"`
	Host   string    `json:"host,omitempty"`
	Signer string    `json:"signer,omitempty"` // "ed25519:" + base64 public key
	Sig    string    `json:"sig,omitempty"`    // base64 ed25519 signature of signedBytes
}

// parseRef opens and decodes the ref of branch.
func parseRef(ring *keyRing, branch string, data []byte) (refRecord, store.ID, error) {
	var r refRecord
	data, err := ring.openWhole("ref", branch, data)
	if err != nil {
		return r, store.ID{}, err
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return r, store.ID{}, fmt.Errorf("%w: ref %s: %v", ErrCorrupt, branch, err)
	}
	id, err := store.ParseID(r.Commit)
	if err != nil {
		return r, store.ID{}, fmt.Errorf("%w: ref %s: %v", ErrCorrupt, branch, err)
	}
	return r, id, nil
}

func decodeRef(ring *keyRing, branch string, data []byte) (store.ID, error) {
	_, id, err := parseRef(ring, branch, data)
	return id, err
}

func packKey(id store.ID) string  { return dirPacks + id.String() }
func indexKey(id store.ID) string { return dirIndex + id.String() }
func refKey(branch string) string { return dirRefs + branch }

func parseHexName(key, dir string) (store.ID, bool) {
	s := strings.TrimPrefix(key, dir)
	if len(s) != 64 {
		return store.ID{}, false
	}
	var id store.ID
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return store.ID{}, false
	}
	return id, true
}
