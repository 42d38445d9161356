package branch

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/agentfs/agentfs/store"
)

// Commit is a checkpoint: an immutable version of a tree, stored as a block whose ID is the
// checkpoint id. Parents are all the commits it was made from (two for a merge).
type Commit struct {
	Root    store.ID
	Parents []store.ID
	Time    time.Time
	Branch  string // the branch it was taken on
	Name    string // optional checkpoint name (BRANCH@NAME)
	Message string
	Provenance
	Files FileCounts // paths created, modified and deleted since the first parent
}

// Commit encoding, version 2: 'C', 2, root, uvarint parent count, parents, varint unix nanos,
// length-prefixed branch, name and message, then the provenance trailer (provenance.go).
// Version 1 is the same without the trailer; it is still read.
const (
	commitMagic   = 'C'
	commitVersion = 2
)

var errBadCommit = errors.New("branch: malformed commit")

func encodeCommit(c *Commit) []byte {
	b := []byte{commitMagic, commitVersion}
	b = append(b, c.Root[:]...)
	b = binary.AppendUvarint(b, uint64(len(c.Parents)))
	for _, p := range c.Parents {
		b = append(b, p[:]...)
	}
	b = binary.AppendVarint(b, c.Time.UnixNano())
	for _, s := range []string{c.Branch, c.Name, c.Message} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return appendProvenance(b, &c.Provenance, c.Files)
}

func decodeCommit(b []byte) (*Commit, error) {
	if len(b) < 2+32 || b[0] != commitMagic || (b[1] != 1 && b[1] != commitVersion) {
		return nil, errBadCommit
	}
	c := &Commit{}
	copy(c.Root[:], b[2:34])
	p := b[34:]
	n, k := binary.Uvarint(p)
	if k <= 0 || n > uint64(len(p[k:])/32) {
		return nil, errBadCommit
	}
	p = p[k:]
	for i := uint64(0); i < n; i++ {
		var id store.ID
		copy(id[:], p[:32])
		c.Parents = append(c.Parents, id)
		p = p[32:]
	}
	t, k := binary.Varint(p)
	if k <= 0 {
		return nil, errBadCommit
	}
	c.Time = time.Unix(0, t).UTC()
	p = p[k:]
	for _, dst := range []*string{&c.Branch, &c.Name, &c.Message} {
		l, k := binary.Uvarint(p)
		if k <= 0 || l > uint64(len(p)-k) {
			return nil, errBadCommit
		}
		*dst = string(p[k : k+int(l)])
		p = p[k+int(l):]
	}
	if b[1] >= 2 {
		r := &commitReader{p: p}
		decodeProvenance(r, c)
		if r.bad {
			return nil, errBadCommit
		}
		p = r.p
	}
	if len(p) != 0 {
		return nil, errBadCommit
	}
	return c, nil
}
