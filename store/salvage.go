package store

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// What a damaged database cannot lose (issue 13): the refs, checkpoint names, commit index,
// remotes and overlays, i.e. every key outside the block keyspace, are kept twice:
//
//   - metadata.copy, a file of its own (not hard links into the database), rewritten when
//     it changed by gc and every minute by the daemon: it survives a damaged sstable;
//   - db.checkpoint, a Pebble checkpoint (hard links of the data files, a copy of the
//     MANIFEST and WAL) refreshed at the same times: it survives a damaged MANIFEST or WAL.
//
// So a damaged file loses at most the metadata written since the last copy (a minute while
// the daemon runs) and the blocks held only in the damaged file, which fsck --repair
// fetches from a remote that has them.

const metaMagic = "agentfs metadata copy 1\n"

// SaveMetadataCopy writes every key outside the block keyspace, except those the skip
// function set by SetMetadataCopySkip passes over, to path (atomically). It streams: memory
// stays bounded whatever the size of the keyspace. It skips the write when the content is
// what path already holds (the checksums at the ends agree).
func (s *Store) SaveMetadataCopy(path string) (written bool, err error) {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return false, err
	}
	defer func() {
		if f != nil {
			f.Close()
		}
		if !written {
			os.Remove(tmp)
		}
	}()
	h := sha256.New()
	w := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	w.WriteString(metaMagic)
	var n [binary.MaxVarintLen64]byte
	put := func(b []byte) {
		w.Write(n[:binary.PutUvarint(n[:], uint64(len(b)))])
		w.Write(b)
	}
	it, err := s.db.NewIter(nil)
	if err != nil {
		return false, err
	}
	for it.First(); it.Valid(); {
		k := it.Key()
		var to []byte
		if len(k) > 0 && k[0] == prefixBlock {
			to = []byte{prefixBlock + 1}
		} else if s.copySkip != nil {
			to = s.copySkip(k)
		}
		if to != nil {
			it.SeekGE(to)
			continue
		}
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return false, err
		}
		put(k)
		put(v)
		it.Next()
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return false, err
	}
	if err := w.Flush(); err != nil {
		return false, err
	}
	sum := h.Sum(nil)
	if _, err := f.Write(sum); err != nil {
		return false, err
	}
	if sameChecksum(path, sum) {
		return false, nil
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	f = nil
	if err == nil {
		err = os.Rename(tmp, path)
	}
	return err == nil, err
}

// sameChecksum reports whether the copy at path ends with sum (a copy's last 32 bytes are
// the SHA-256 of the rest, so equal sums mean equal copies).
func sameChecksum(path string, sum []byte) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() < int64(len(sum)) {
		return false
	}
	old := make([]byte, len(sum))
	if _, err := f.ReadAt(old, st.Size()-int64(len(sum))); err != nil {
		return false
	}
	return bytes.Equal(old, sum)
}

// SetMetadataCopySkip sets a function that, given a key, returns the key to seek to when
// the metadata copy should pass over it (nil: copy it). The engine uses it to leave out the
// working layer's pages: uncommitted file data can be gigabytes, and it is data, not what
// the copy exists to keep (refs, names, overlays' metadata).
func (s *Store) SetMetadataCopySkip(skip func(k []byte) []byte) { s.copySkip = skip }

// ReadMetadataCopy calls fn for every key of the copy at path and returns when it was made.
// A copy that fails its checksum is refused whole.
func ReadMetadataCopy(path string, fn func(k, v []byte) error) (time.Time, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return time.Time{}, err
	}
	st, _ := os.Stat(path)
	if len(b) < len(metaMagic)+sha256.Size || string(b[:len(metaMagic)]) != metaMagic {
		return time.Time{}, fmt.Errorf("%s is not a metadata copy", path)
	}
	body, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if got := sha256.Sum256(body); !bytes.Equal(got[:], sum) {
		return time.Time{}, fmt.Errorf("damaged: metadata copy %s (checksum mismatch)", path)
	}
	r := bufio.NewReader(bytes.NewReader(body[len(metaMagic):]))
	next := func() ([]byte, error) {
		n, err := binary.ReadUvarint(r)
		if err != nil {
			return nil, err
		}
		if n > uint64(len(body)) {
			return nil, io.ErrUnexpectedEOF
		}
		p := make([]byte, n)
		_, err = io.ReadFull(r, p)
		return p, err
	}
	for {
		k, err := next()
		if err == io.EOF {
			return st.ModTime(), nil
		}
		if err != nil {
			return time.Time{}, fmt.Errorf("%s: %w", path, err)
		}
		v, err := next()
		if err != nil {
			return time.Time{}, fmt.Errorf("%s: %w", path, err)
		}
		if err := fn(k, v); err != nil {
			return time.Time{}, err
		}
	}
}

// RefreshCheckpoint replaces the Pebble checkpoint at dir with a new one.
func (s *Store) RefreshCheckpoint(dir string) error {
	tmp := dir + ".new"
	os.RemoveAll(tmp)
	if err := s.db.Checkpoint(tmp, pebble.WithFlushedWAL()); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("store: checkpoint: %w", err)
	}
	old := dir + ".old"
	os.RemoveAll(old)
	if err := os.Rename(dir, old); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return err
	}
	return os.RemoveAll(old)
}

// SalvageStats counts what Salvage copied and what it could not read.
type SalvageStats struct {
	Blocks    int64 // blocks copied (their content matches their id)
	BadBlocks int64 // blocks that did not read or did not match
	Meta      int64 // other keys copied
	BadRanges int   // key ranges skipped because they did not read
	Damaged   []*DamageError
}

// Salvage copies every key of src that reads into dst; a block only when its content
// matches its id. A key range that does not read is split until the damage is cornered.
func Salvage(ctx context.Context, src *pebble.DB, srcDir string, dst *Store) (SalvageStats, error) {
	var st SalvageStats
	seen := map[string]bool{}
	damage := func(err error) {
		if de := AsDamage(err, srcDir); de != nil && !seen[de.Path] {
			seen[de.Path] = true
			st.Damaged = append(st.Damaged, de)
		}
	}
	b := dst.db.NewBatch()
	flush := func() error {
		if b.Len() == 0 {
			return nil
		}
		err := b.Commit(pebble.NoSync)
		b.Close()
		b = dst.db.NewBatch()
		return err
	}
	var scan func(lo, hi []byte, depth int) error
	scan = func(lo, hi []byte, depth int) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		it, err := src.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
		if err != nil {
			damage(err)
			st.BadRanges++
			return nil
		}
		var last []byte
		for it.First(); it.Valid(); it.Next() {
			k := it.Key()
			last = append(last[:0], k...)
			v, err := it.ValueAndErr()
			isBlock := len(k) == 1+len(ID{}) && k[0] == prefixBlock
			if err != nil {
				damage(err)
				if isBlock {
					st.BadBlocks++
				}
				continue
			}
			if isBlock {
				data, derr := decodeValue(nil, v)
				if derr != nil || Sum(data) != ID(k[1:]) {
					st.BadBlocks++
					continue
				}
				st.Blocks++
			} else {
				st.Meta++
			}
			if err := b.Set(k, v, nil); err != nil {
				return err
			}
			if b.Len() > 32<<20 {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		ierr := it.Error()
		it.Close()
		if ierr == nil {
			return nil
		}
		damage(ierr)
		start := lo
		if last != nil {
			start = append(bytes.Clone(last), 0)
		}
		mid := midpoint(start, hi)
		if depth >= salvageDepth || mid == nil {
			st.BadRanges++
			return nil
		}
		if err := scan(start, mid, depth+1); err != nil {
			return err
		}
		return scan(mid, hi, depth+1)
	}
	// The block keyspace in 256 parts, so that one damaged table costs little scanning.
	bounds := [][]byte{{0}, {prefixBlock}}
	for i := 1; i < 256; i++ {
		bounds = append(bounds, []byte{prefixBlock, byte(i)})
	}
	bounds = append(bounds, []byte{prefixBlock + 1}, []byte{0xff, 0xff, 0xff})
	for i := 0; i+1 < len(bounds); i++ {
		if err := scan(bounds[i], bounds[i+1], 0); err != nil {
			b.Close()
			return st, err
		}
	}
	if err := flush(); err != nil {
		return st, err
	}
	b.Close()
	return st, dst.db.Flush()
}

// salvageDepth bounds the splitting of a range that does not read: each of the 257 ranges
// Salvage scans costs at most 2^salvageDepth iterators over damaged data.
const salvageDepth = 2

// midpoint returns a key between lo and hi (lo < mid < hi), or nil when there is none at
// the precision used (40 bytes).
func midpoint(lo, hi []byte) []byte {
	const width = 40
	pad := func(b []byte) *big.Int {
		p := make([]byte, width)
		copy(p, b)
		return new(big.Int).SetBytes(p)
	}
	l, h := pad(lo), pad(hi)
	m := new(big.Int).Add(l, h)
	m.Rsh(m, 1)
	if m.Cmp(l) <= 0 || m.Cmp(h) >= 0 {
		return nil
	}
	out := m.FillBytes(make([]byte, width))
	return bytes.TrimRight(out, "\x00")
}
