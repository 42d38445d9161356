package remote

// Key rotation of an encrypted remote: agentfs remote rekey NAME --key-file NEW.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/agentfs/agentfs/backends"
	"github.com/agentfs/agentfs/store"
)

// RekeyResult says what a rekey rewrote.
type RekeyResult struct {
	Remote      string `json:"remote"`
	KeyID       string `json:"key_id"` // the new key's id
	Packs       int    `json:"packs"`  // packs in the bucket
	Rewritten   int    `json:"packs_rewritten"`
	Objects     int64  `json:"objects_rewritten"`
	Refs        int    `json:"refs_rewritten"`
	BytesPushed int64  `json:"bytes_written"`
}

// Rekey makes keyFile the key that seals what is pushed to remote from now on (the old keys
// stay in the ring, so what others push with them stays readable) and rewrites every pack,
// index and ref of the bucket that an older key sealed. It holds the collection lock, so no
// push runs meanwhile. Interrupted, it can be run again: what it rewrote is not redone.
func (m *Manager) Rekey(ctx context.Context, remote, keyFile string) (RekeyResult, error) {
	res := RekeyResult{Remote: remote}
	b, err := m.backend(ctx, remote)
	if err != nil {
		return res, err
	}
	if mk, err := readMarker(ctx, b); err != nil {
		return res, fmt.Errorf("remote %s: %w", remote, err)
	} else if mk == nil || mk.Encryption == nil {
		return res, keyErrorf("remote %s is not encrypted: rekey changes the key of an encrypted remote; push to a new bucket with --key-file to encrypt", remote)
	}
	cfg, err := m.config(remote)
	if err != nil {
		return res, err
	}
	files := []string{keyFile}
	for _, f := range cfg.KeyFiles {
		if f != keyFile {
			files = append(files, f)
		}
	}
	// The new key must open nothing yet, but the old ones must still be in the ring: the
	// variable's key stays after the files (keySources).
	if err := m.configure(remote, Security{KeyFiles: files}); err != nil {
		return res, err
	}
	lock := m.remoteLock(remote)
	lock.Lock()
	defer lock.Unlock()
	ring, err := m.ring(ctx, remote)
	if err != nil {
		return res, err
	}
	cur := ring.current()
	res.KeyID = fmt.Sprintf("%x", cur.id)
	ls, err := m.gcLease(ctx, remote, b)
	if err != nil {
		return res, err
	}
	defer ls.release(ctx)
	if err := m.refresh(ctx, remote, b, nil); err != nil {
		return res, err
	}
	cached, err := m.cachedPacks(remote)
	if err != nil {
		return res, err
	}
	ids := make([]store.ID, 0, len(cached))
	for id := range cached {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return bytes.Compare(ids[i][:], ids[j][:]) < 0 })
	res.Packs = len(ids)

	var gres GCResult
	var rw rewriter
	rw.init(m, remote, ring, b, false, &gres)
	rw.fence = func() error { return ls.check(ctx) }
	all := map[store.ID]bool{}
	var old []store.ID
	for _, id := range ids {
		head, err := readAll(ctx, b, indexKey(id), 0, int64(len(sealMagic)+keyIDLen))
		if err != nil {
			return res, fmt.Errorf("remote %s: read index %s: %w", remote, id, err)
		}
		if bytes.Equal(head[len(sealMagic):], cur.id[:]) {
			continue // sealed with the new key already (rewritten before, or pushed since)
		}
		ents := cached[id]
		for _, e := range ents {
			all[e.ID] = true
		}
		// Every object, reachable or not: rekey is no collection, and a young pack may
		// belong to a push whose ref is not written yet.
		if err := rw.add(ctx, &gcPack{id: id, entries: ents}, all, nil); err != nil {
			return res, err
		}
		old = append(old, id)
	}
	if err := rw.flush(ctx); err != nil {
		return res, err
	}
	res.Objects, res.BytesPushed = gres.Copied, gres.WrittenBytes
	for _, id := range old {
		if err := ls.check(ctx); err != nil {
			return res, err
		}
		if err := b.Delete(ctx, indexKey(id)); err != nil {
			return res, fmt.Errorf("remote %s: delete index %s: %w", remote, id, err)
		}
		if err := b.Delete(ctx, packKey(id)); err != nil && !errors.Is(err, backends.ErrNotExist) {
			return res, fmt.Errorf("remote %s: delete pack %s: %w", remote, id, err)
		}
		res.Rewritten++
	}
	if err := m.forgetPacks(remote, old, cached, nil); err != nil {
		return res, err
	}

	// Refs: opened with the ring, sealed again with the new key by compare-and-swap (a
	// signature inside stays valid: it covers the branch, commit and time, not the seal).
	err = b.List(ctx, dirRefs, func(oi backends.ObjectInfo) error {
		br := strings.TrimPrefix(oi.Key, dirRefs)
		data, etag, err := getCapped(ctx, b, oi.Key, maxRefSize)
		if errors.Is(err, backends.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(data) >= len(sealMagic)+keyIDLen && bytes.Equal(data[len(sealMagic):len(sealMagic)+keyIDLen], cur.id[:]) {
			return nil
		}
		plain, err := ring.openWhole("ref", br, data)
		if err != nil {
			return err
		}
		if _, err := b.PutIf(ctx, oi.Key, ring.sealWhole("ref", br, plain), etag); err != nil {
			return fmt.Errorf("remote %s: rewrite ref %s: %w (run rekey again)", remote, br, err)
		}
		res.Refs++
		return nil
	})
	return res, err
}
