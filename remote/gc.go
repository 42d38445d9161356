package remote

// Garbage collection in the bucket (docs/format.md, "Garbage collection").
//
// GC marks every object reachable from the refs under refs/heads/ (all hosts' branches),
// reading commits and tree nodes from the local store when it has them and otherwise from
// the bucket (verified by hash), then deletes the packs none of whose objects is reachable
// and rewrites the packs that are mostly unreachable. Packs and index objects younger than
// the grace period are never touched: a push uploads its packs and indexes before it moves
// its ref, so a pack whose ref has not been written yet is young.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/agentfs/agentfs/backends"
	"github.com/agentfs/agentfs/branch/tree"
	"github.com/agentfs/agentfs/store"
)

// DefaultGrace is the default grace period of GC: packs and index objects younger than this
// are never deleted or rewritten. It must exceed the longest push (first pack uploaded to ref
// written) plus the clock skew between hosts and the storage service.
const DefaultGrace = time.Hour

// GCOptions configure a remote garbage collection.
type GCOptions struct {
	// DryRun only reports what would be done: nothing in the bucket or the local cache changes.
	DryRun bool
	// Grace: packs and indexes whose ModTime is less than Grace before the start of the
	// collection are left alone. 0 = DefaultGrace; negative = no grace period (only safe when
	// no other host can be pushing, e.g. in tests).
	Grace time.Duration
	// RewriteRatio: a pack with some reachable objects is rewritten when more than this
	// fraction of its bytes is unreachable (0 = 0.5; >= 1 never rewrites).
	RewriteRatio float64
}

// GCResult says what a remote garbage collection found and did (or, in a dry run, would do).
type GCResult struct {
	Remote      string   `json:"remote"`
	DryRun      bool     `json:"dry_run"`
	Grace       string   `json:"grace"`
	Refs        int      `json:"refs"`         // branch refs marked from
	Heads       []string `json:"heads"`        // "branch commit"
	LiveObjects int64    `json:"live_objects"` // objects reachable from the refs
	Packs       int      `json:"packs"`        // packs in the bucket before
	PackBytes   int64    `json:"pack_bytes"`   // their bytes
	LiveBytes   int64    `json:"live_bytes"`   // bytes of reachable objects in them
	Young       int      `json:"packs_young"`  // packs (or lone indexes) spared as younger than Grace

	Deleted        int   `json:"packs_deleted"` // dead packs deleted (with their index)
	DeletedBytes   int64 `json:"packs_deleted_bytes"`
	Rewritten      int   `json:"packs_rewritten"` // mostly dead packs replaced by new packs
	RewrittenBytes int64 `json:"packs_rewritten_bytes"`
	Written        int   `json:"packs_written"` // new packs holding the live objects of rewritten ones
	WrittenBytes   int64 `json:"packs_written_bytes"`
	Copied         int64 `json:"objects_copied"`  // live objects moved into new packs
	Orphans        int   `json:"orphans_deleted"` // packs without index, or indexes without pack
	Reclaimed      int64 `json:"bytes_reclaimed"` // bytes removed minus bytes written (packs and indexes)
	Forgotten      int   `json:"cache_forgotten"` // packs dropped from the local index cache

	Duration time.Duration `json:"duration_ns"`
}

// gcPack is one pack of the bucket as GC sees it.
type gcPack struct {
	id       store.ID
	pack     *backends.ObjectInfo // nil: no pack object
	index    *backends.ObjectInfo // nil: no index object
	entries  []entry              // from the (cached) index, in offset order
	live     int64                // bytes of reachable entries
	liveN    int
	young    bool
	unknown  bool // index listed but not in the cache
	action   byte // 0 keep, 'd' delete, 'r' rewrite
	size     int64
	idxBytes int64
}

// GC collects the garbage of remote: see GCOptions and docs/format.md. It holds the remote's
// lock, so this repository does not push or pull to that remote meanwhile; other hosts may.
func (m *Manager) GC(ctx context.Context, remote string, o GCOptions) (GCResult, error) {
	begun := time.Now()
	res := GCResult{Remote: remote, DryRun: o.DryRun, Heads: []string{}}
	grace := o.Grace
	switch {
	case grace == 0:
		grace = DefaultGrace
	case grace < 0:
		grace = 0
	}
	res.Grace = grace.String()
	ratio := o.RewriteRatio
	if ratio <= 0 {
		ratio = 0.5
	}
	b, err := m.backend(ctx, remote)
	if err != nil {
		return res, err
	}
	lock := m.remoteLock(remote)
	lock.Lock()
	defer lock.Unlock()
	t, done := m.begin("gc", remote, "")
	defer done()
	if err := checkFormat(ctx, b); err != nil {
		return res, fmt.Errorf("remote %s: %w", remote, err)
	}
	ring, err := m.ring(ctx, remote)
	if err != nil {
		return res, err
	}
	// fence is checked before every write and delete: a collection that lost its lease
	// (it stalled past the lease's TTL, so a push may be running) stops.
	fence := func() error { return nil }
	if !o.DryRun {
		ls, err := m.gcLease(ctx, remote, b)
		if err != nil {
			return res, err
		}
		defer ls.release(ctx)
		fence = func() error { return ls.check(ctx) }
	}

	// The age of packs is measured from before the refs are read: a pack that was already
	// Grace old then belongs to a push that, by assumption, had written its ref by then, so
	// the refs we read name everything such a push needs.
	start := time.Now()
	cutoff := start.Add(-grace)

	// 1. Refs of all hosts.
	var heads []store.ID
	err = b.List(ctx, dirRefs, func(oi backends.ObjectInfo) error {
		data, _, err := getCapped(ctx, b, oi.Key, maxRefSize)
		if errors.Is(err, backends.ErrNotExist) {
			return nil // deleted since the listing
		}
		if err != nil {
			return fmt.Errorf("remote %s: read ref %s: %w", remote, oi.Key, err)
		}
		id, err := decodeRef(ring, oi.Key[len(dirRefs):], data)
		if err != nil {
			return err // never collect with a ref we cannot read
		}
		heads = append(heads, id)
		res.Heads = append(res.Heads, oi.Key[len(dirRefs):]+" "+id.String())
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("remote %s: list refs: %w", remote, err)
	}
	res.Refs = len(heads)

	// 2. The index cache, brought up to date, then the listing of packs and indexes. Listing
	// after the refresh means a cached pack missing from the listing is really gone.
	t.set("index", 0, 0)
	if err := m.refresh(ctx, remote, b, t); err != nil {
		return res, err
	}
	packs := map[store.ID]*gcPack{}
	get := func(id store.ID) *gcPack {
		p := packs[id]
		if p == nil {
			p = &gcPack{id: id}
			packs[id] = p
		}
		return p
	}
	for _, dir := range []string{dirIndex, dirPacks} {
		err := b.List(ctx, dir, func(oi backends.ObjectInfo) error {
			id, ok := parseHexName(oi.Key, dir)
			if !ok {
				return nil
			}
			p := get(id)
			if dir == dirIndex {
				p.index = &oi
			} else {
				p.pack = &oi
			}
			return nil
		})
		if err != nil {
			return res, fmt.Errorf("remote %s: list %s: %w", remote, dir, err)
		}
	}
	cached, err := m.cachedPacks(remote)
	if err != nil {
		return res, err
	}
	for id, p := range packs {
		if _, ok := cached[id]; p.index != nil && !ok {
			p.unknown = true // listed after the refresh: not ours to judge this time
		}
	}
	var gone []store.ID // cached packs whose index is no longer in the bucket
	for id, ents := range cached {
		if p := packs[id]; p != nil && p.index != nil {
			p.entries = ents
		} else {
			gone = append(gone, id)
		}
	}
	// Where each object is, in packs that are listed with their index.
	where := map[store.ID][]location{}
	for _, p := range packs {
		if p.pack == nil || p.index == nil {
			continue
		}
		for _, e := range p.entries {
			where[e.ID] = append(where[e.ID], location{remote: remote, pack: p.id, off: e.Offset, length: e.Length, kind: e.Kind})
		}
	}

	// 3. Mark.
	t.set("mark", 0, 0)
	live, err := m.gcMark(ctx, remote, b, heads, where, t)
	if err != nil {
		return res, err
	}
	res.LiveObjects = int64(len(live))

	// 4. Decide.
	ids := make([]store.ID, 0, len(packs))
	for id := range packs {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return bytes.Compare(ids[i][:], ids[j][:]) < 0 })
	for _, id := range ids {
		p := packs[id]
		if p.pack != nil {
			p.size = p.pack.Size
			res.Packs++
			res.PackBytes += p.size
			p.young = p.pack.ModTime.After(cutoff)
		}
		if p.index != nil {
			p.idxBytes = p.index.Size
			p.young = p.young || p.index.ModTime.After(cutoff)
		}
		for _, e := range p.entries {
			if live[e.ID] {
				p.live += int64(e.Length)
				p.liveN++
			}
		}
		res.LiveBytes += p.live
		switch {
		case p.young || p.unknown:
			res.Young++
		case p.liveN == 0:
			p.action = 'd'
		case p.pack != nil && p.index != nil && float64(p.size-p.live) > ratio*float64(p.size):
			p.action = 'r'
		case p.pack == nil:
			// An index whose pack is gone but that lists reachable objects: the bucket is
			// damaged; deleting the index would not help anyone find them.
			m.o.Logger.Printf("remote %s: gc: index %s lists %d reachable objects but its pack is missing", remote, id, p.liveN)
		}
	}
	// Live objects of rewritten packs that a kept pack also holds need not be copied.
	kept := map[store.ID]bool{}
	for _, p := range packs {
		if p.action == 0 && p.pack != nil && p.index != nil {
			for _, e := range p.entries {
				kept[e.ID] = true
			}
		}
	}

	// 5. Sweep: write the new packs first, then delete (each index before its pack, so that
	// no index ever names a missing pack).
	t.set("rewrite", 0, 0)
	var removed []store.ID
	var rw rewriter
	rw.init(m, remote, ring, b, o.DryRun, &res)
	rw.fence = fence
	for _, id := range ids {
		p := packs[id]
		if p.action != 'r' {
			continue
		}
		if err := rw.add(ctx, p, live, kept); err != nil {
			return res, err
		}
		res.Rewritten++
		res.RewrittenBytes += p.size
		t.add(1, p.size)
	}
	if err := rw.flush(ctx); err != nil {
		return res, err
	}
	t.set("delete", 0, 0)
	for _, id := range ids {
		p := packs[id]
		if p.action == 0 {
			continue
		}
		if p.action == 'd' {
			if p.pack != nil && p.index != nil {
				res.Deleted++
				res.DeletedBytes += p.size
			} else {
				res.Orphans++
			}
		}
		res.Reclaimed += p.size + p.idxBytes
		if o.DryRun {
			continue
		}
		if err := fence(); err != nil {
			return res, err
		}
		if p.index != nil {
			if err := b.Delete(ctx, indexKey(id)); err != nil {
				return res, fmt.Errorf("remote %s: delete index %s: %w", remote, id, err)
			}
		}
		removed = append(removed, id)
		if p.pack != nil {
			if err := b.Delete(ctx, packKey(id)); err != nil {
				return res, fmt.Errorf("remote %s: delete pack %s: %w", remote, id, err)
			}
		}
		t.add(1, p.size)
	}
	res.Reclaimed -= res.WrittenBytes

	// 6. The local index cache: drop the deleted packs and those other hosts' collections
	// deleted, pointing objects that survive elsewhere at their surviving copy.
	if !o.DryRun {
		drop := append(gone, removed...)
		if err := m.forgetPacks(remote, drop, cached, where); err != nil {
			return res, err
		}
		res.Forgotten = len(drop)
	}
	res.Duration = time.Since(begun)
	return res, nil
}

// cachedPacks returns the entries of every pack in the index cache of remote.
func (m *Manager) cachedPacks(remote string) (map[store.ID][]entry, error) {
	out := map[store.ID][]entry{}
	pi := remoteKey(remote, 'i')
	it, err := m.db.NewIter(&pebble.IterOptions{LowerBound: pi, UpperBound: prefixEnd(pi)})
	if err != nil {
		return nil, err
	}
	for it.First(); it.Valid(); it.Next() {
		if k := it.Key(); len(k) == len(pi)+32 {
			out[store.ID(k[len(pi):])] = nil
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, err
	}
	po := remoteKey(remote, 'o')
	it, err = m.db.NewIter(&pebble.IterOptions{LowerBound: po, UpperBound: prefixEnd(po)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		k, v := it.Key(), it.Value()
		if len(k) != len(po)+40 || len(v) < 34 {
			continue
		}
		pack := store.ID(k[len(po) : len(po)+32])
		l, n := binary.Uvarint(v[33:])
		if n <= 0 {
			return nil, fmt.Errorf("%w: remote %s: bad cached index entry of pack %s", ErrCorrupt, remote, pack)
		}
		out[pack] = append(out[pack], entry{ID: store.ID(v[:32]), Kind: v[32],
			Offset: binary.BigEndian.Uint64(k[len(k)-8:]), Length: uint32(l)})
	}
	return out, it.Error()
}

// forgetPacks removes packs from the index cache of remote. An object whose cached location
// is in one of them is pointed at a copy in a pack that stays (from where), or forgotten.
func (m *Manager) forgetPacks(remote string, drop []store.ID, entries map[store.ID][]entry, where map[store.ID][]location) error {
	if len(drop) == 0 {
		return nil
	}
	dropped := map[store.ID]bool{}
	for _, id := range drop {
		dropped[id] = true
	}
	b := m.db.NewBatch()
	defer b.Close()
	for _, pack := range drop {
		if err := b.Delete(remoteKey(remote, 'i', pack[:]), nil); err != nil {
			return err
		}
		po := remoteKey(remote, 'o', pack[:])
		if err := b.DeleteRange(po, prefixEnd(po), nil); err != nil {
			return err
		}
		for _, e := range entries[pack] {
			l, ok, err := m.locate(remote, e.ID)
			if err != nil {
				return err
			}
			if !ok || l.pack != pack {
				continue // cached elsewhere (a rewritten pack's new copy, or a duplicate)
			}
			var alt *location
			for i, w := range where[e.ID] {
				if !dropped[w.pack] {
					alt = &where[e.ID][i]
					break
				}
			}
			if alt != nil {
				err = b.Set(indexKey2(e.ID, remote), encodeLoc(*alt), nil)
			} else {
				err = b.Delete(indexKey2(e.ID, remote), nil)
			}
			if err != nil {
				return err
			}
		}
	}
	return m.st.CommitDurable(b)
}

// gcMark returns the set of objects reachable from heads: the commits and their history, and
// for each commit every tree node and data block of its tree. Commits and tree nodes are read
// from the local store when it has them, else from the bucket, and verified by hash. A head
// or tree node that cannot be found anywhere aborts the collection (its subtree could not be
// marked); a missing parent commit ends that line of history (a repository can push commits
// whose older history it never had).
func (m *Manager) gcMark(ctx context.Context, remote string, b backends.Backend, heads []store.ID, where map[store.ID][]location, t *tracker) (map[store.ID]bool, error) {
	live := map[store.ID]bool{}
	blocks := &gcBlocks{buf: map[store.ID][]byte{}}
	tr := tree.New(blocks, 1)
	const batch = 512

	var commits []store.ID
	for _, h := range heads {
		if !live[h] {
			live[h] = true
			commits = append(commits, h)
		}
	}
	isHead := map[store.ID]bool{}
	for _, h := range heads {
		isHead[h] = true
	}
	for len(commits) > 0 {
		n := min(len(commits), batch)
		cur := commits[:n]
		commits = commits[n:]
		if err := m.gcLoad(ctx, remote, b, cur, where, blocks); err != nil {
			return nil, err
		}
		var roots []store.ID
		for _, id := range cur {
			data, ok := blocks.buf[id]
			if !ok {
				if isHead[id] {
					return nil, fmt.Errorf("remote %s: gc: head commit %s is neither in the bucket nor local: %w", remote, id, store.ErrNotFound)
				}
				delete(live, id) // history cut off here
				continue
			}
			delete(blocks.buf, id)
			root, parents, err := commitLinks(data)
			if err != nil {
				return nil, fmt.Errorf("remote %s: gc: commit %s: %w", remote, id, err)
			}
			t.add(1, 0)
			if !root.IsZero() && !live[root] {
				live[root] = true
				roots = append(roots, root)
			}
			for _, p := range parents {
				if !live[p] {
					live[p] = true
					commits = append(commits, p)
				}
			}
		}
		// The trees of this batch of commits, level by level.
		for level := roots; len(level) > 0; {
			n := min(len(level), batch)
			cur := level[:n]
			level = level[n:]
			if err := m.gcLoad(ctx, remote, b, cur, where, blocks); err != nil {
				return nil, err
			}
			for _, id := range cur {
				if _, ok := blocks.buf[id]; !ok {
					return nil, fmt.Errorf("remote %s: gc: tree node %s is neither in the bucket nor local: %w", remote, id, store.ErrNotFound)
				}
				err := tr.ReadNode(ctx, id, func(lvl int, k, v []byte) bool {
					var child store.ID
					switch {
					case lvl > 0 && len(v) == 32:
						child = store.ID(v)
					case lvl == 0 && len(k) == 17 && k[0] == 'b' && len(v) == 32:
						live[store.ID(v)] = true // data block: nothing to read
						return true
					default:
						return true
					}
					if !live[child] {
						live[child] = true
						level = append(level, child)
					}
					return true
				})
				delete(blocks.buf, id)
				if err != nil {
					return nil, fmt.Errorf("remote %s: gc: tree node %s: %w", remote, id, err)
				}
				t.add(1, 0)
			}
		}
	}
	return live, nil
}

// gcLoad puts the content of ids into blocks.buf: from the local store when it has them,
// else read from the bucket (adjacent objects of one pack in one ranged GET) and verified.
// Ids found nowhere are left out.
func (m *Manager) gcLoad(ctx context.Context, remote string, b backends.Backend, ids []store.ID, where map[store.ID][]location, blocks *gcBlocks) error {
	local := store.LocalOnly(ctx)
	byPack := map[store.ID][]located{}
	for _, id := range ids {
		data, err := m.st.Get(local, id, nil)
		if err == nil {
			blocks.buf[id] = data
			continue
		}
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if ls := where[id]; len(ls) > 0 {
			byPack[ls[0].pack] = append(byPack[ls[0].pack], located{id, ls[0]})
		}
	}
	ring, err := m.ring(ctx, remote)
	if err != nil {
		return err
	}
	runs := rangeRuns(byPack)
	out := make([][][]byte, len(runs))
	err = parallel(ctx, len(runs), 6, func(i int) error {
		run := runs[i]
		first, last := run[0].loc, run[len(run)-1].loc
		data, err := readAll(ctx, b, packKey(first.pack), int64(first.off), int64(last.off+uint64(last.length)-first.off))
		if err != nil {
			return fmt.Errorf("remote %s: gc: read pack %s: %w", remote, first.pack, err)
		}
		out[i] = make([][]byte, len(run))
		for j, o := range run {
			rel := o.loc.off - first.off
			if out[i][j], err = ring.decodeObject(o.id, data[rel:rel+uint64(o.loc.length)]); err != nil {
				m.o.Logger.Printf("remote %s: pack %s: %v", remote, first.pack, err)
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i, run := range runs {
		for j, o := range run {
			blocks.buf[o.id] = out[i][j]
		}
	}
	return nil
}

// commitLinks decodes the root and parents of a commit (branch/commit.go, versions 1 and 2
// share the start: 'C', version, root, uvarint parent count, parents, ...).
func commitLinks(b []byte) (root store.ID, parents []store.ID, err error) {
	if len(b) < 2+32 || b[0] != 'C' || (b[1] != 1 && b[1] != 2) {
		return root, nil, errors.New("not a version 1 or 2 commit")
	}
	root = store.ID(b[2:34])
	p := b[34:]
	n, k := binary.Uvarint(p)
	if k <= 0 || n > uint64(len(p[k:])/32) {
		return root, nil, errors.New("bad parent count")
	}
	p = p[k:]
	for i := uint64(0); i < n; i++ {
		parents = append(parents, store.ID(p[:32]))
		p = p[32:]
	}
	return root, parents, nil
}

// gcBlocks serves the tree reader the nodes gcLoad fetched.
type gcBlocks struct {
	buf map[store.ID][]byte
}

func (g *gcBlocks) Put(ctx context.Context, data []byte) (store.ID, error) {
	return store.ID{}, errors.New("remote gc: read-only")
}

func (g *gcBlocks) Get(ctx context.Context, id store.ID, buf []byte) ([]byte, error) {
	d, ok := g.buf[id]
	if !ok {
		return nil, fmt.Errorf("%w: block %s", store.ErrNotFound, id)
	}
	return append(buf[:0], d...), nil
}

// rewriter copies the live objects of mostly dead packs into new packs, in their old order
// (so a file's blocks stay adjacent for read-ahead), verified by hash on the way.
type rewriter struct {
	m       *Manager
	remote  string
	ring    *keyRing
	b       backends.Backend
	dryRun  bool
	res     *GCResult
	buf     []byte
	entries []entry
	copied  map[store.ID]bool
	fence   func() error
}

func (w *rewriter) init(m *Manager, remote string, ring *keyRing, b backends.Backend, dryRun bool, res *GCResult) {
	*w = rewriter{m: m, remote: remote, ring: ring, b: b, dryRun: dryRun, res: res,
		buf: append([]byte(nil), ring.packMagic()...), copied: map[store.ID]bool{}}
}

func (w *rewriter) add(ctx context.Context, p *gcPack, live, kept map[store.ID]bool) error {
	var todo []entry
	for _, e := range p.entries {
		if live[e.ID] && !kept[e.ID] && !w.copied[e.ID] {
			todo = append(todo, e)
			w.copied[e.ID] = true
		}
	}
	if len(todo) == 0 {
		return nil
	}
	sort.Slice(todo, func(i, j int) bool { return todo[i].Offset < todo[j].Offset })
	if w.dryRun {
		for _, e := range todo {
			w.res.Copied++
			w.res.WrittenBytes += int64(e.Length) + 34 // roughly: object + index entry
		}
		return nil
	}
	first, last := todo[0], todo[len(todo)-1]
	data, err := readAll(ctx, w.b, packKey(p.id), int64(first.Offset), int64(last.Offset+uint64(last.Length)-first.Offset))
	if err != nil {
		return fmt.Errorf("remote %s: gc: read pack %s: %w", w.remote, p.id, err)
	}
	for _, e := range todo {
		rel := e.Offset - first.Offset
		stored := data[rel : rel+uint64(e.Length)]
		content, err := w.ring.decodeObject(e.ID, stored)
		if err != nil {
			w.m.o.Logger.Printf("remote %s: pack %s: %v", w.remote, p.id, err)
			return fmt.Errorf("remote %s: gc: pack %s: %w (nothing deleted)", w.remote, p.id, err)
		}
		if w.ring != nil && !bytes.Equal(stored[:keyIDLen], w.ring.current().id[:]) {
			// Sealed with an older key: a new pack holds only entries of the current key,
			// so that rekey can tell what it still has to rewrite by the index's key.
			stored = w.ring.encodeObject(nil, e.ID, content)
		}
		off := len(w.buf)
		w.buf = append(w.buf, stored...)
		w.entries = append(w.entries, entry{ID: e.ID, Kind: e.Kind, Offset: uint64(off), Length: uint32(len(stored))})
		w.res.Copied++
		if len(w.buf) >= w.m.o.PackSize {
			if err := w.flush(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// flush uploads the pack being built and its index, and records them in the local cache.
func (w *rewriter) flush(ctx context.Context) error {
	if len(w.entries) == 0 || w.dryRun {
		return nil
	}
	if err := w.fence(); err != nil {
		return err
	}
	n, err := w.m.putPack(ctx, w.remote, w.ring, w.b, w.buf, w.entries)
	if err != nil {
		return err
	}
	w.res.Written++
	w.res.WrittenBytes += n
	w.buf, w.entries = append([]byte(nil), w.ring.packMagic()...), nil
	return nil
}
