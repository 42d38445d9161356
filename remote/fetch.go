package remote

import (
	"bytes"
	"container/list"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/cockroachdb/pebble/v2"

	"github.com/agentfs/agentfs/backends"
	"github.com/agentfs/agentfs/branch"
	"github.com/agentfs/agentfs/store"
)

// Ranges of one pack closer than rangeGap are read with one GET, up to maxRange bytes.
const (
	rangeGap = 256 << 10
	maxRange = 8 << 20
)

type located struct {
	id  store.ID
	loc location
}

// rangeRuns groups the objects of each pack into runs that one ranged GET reads: sorted by
// offset, neighbours at most rangeGap apart, at most maxRange bytes per run.
func rangeRuns(byPack map[store.ID][]located) [][]located {
	var runs [][]located
	for _, objs := range byPack {
		sort.Slice(objs, func(i, j int) bool { return objs[i].loc.off < objs[j].loc.off })
		start := 0
		for i := 1; i <= len(objs); i++ {
			if i < len(objs) {
				prevEnd := objs[i-1].loc.off + uint64(objs[i-1].loc.length)
				if objs[i].loc.off <= prevEnd+rangeGap && objs[i].loc.off+uint64(objs[i].loc.length)-objs[start].loc.off <= maxRange {
					continue
				}
			}
			runs = append(runs, objs[start:i])
			start = i
		}
	}
	return runs
}

// fetchObjects downloads ids from remote into the local store (ids already local are
// skipped by the caller). Each object is verified against its id before it is stored.
func (m *Manager) fetchObjects(ctx context.Context, remote string, b backends.Backend, ids []store.ID, t *tracker) error {
	byPack := map[store.ID][]located{}
	for _, id := range ids {
		l, ok, err := m.locate(remote, id)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("remote %s lists no object %s: %w (the bucket's index is incomplete)", remote, id, store.ErrNotFound)
		}
		byPack[l.pack] = append(byPack[l.pack], located{id, l})
	}
	ring, err := m.ring(ctx, remote)
	if err != nil {
		return err
	}
	runs := rangeRuns(byPack)
	return parallel(ctx, len(runs), 6, func(i int) error {
		run := runs[i]
		first, last := run[0].loc, run[len(run)-1].loc
		end := last.off + uint64(last.length)
		data, err := readAll(ctx, b, packKey(first.pack), int64(first.off), int64(end-first.off))
		if err != nil {
			return fmt.Errorf("remote %s: read pack %s: %w", remote, first.pack, err)
		}
		for _, o := range run {
			rel := o.loc.off - first.off
			content, err := ring.decodeObject(o.id, data[rel:rel+uint64(o.loc.length)])
			if err != nil {
				m.o.Logger.Printf("remote %s: pack %s: %v", remote, first.pack, err)
				return err
			}
			if _, err := m.st.Put(ctx, content); err != nil {
				return err
			}
			t.add(1, int64(o.loc.length))
		}
		return nil
	})
}

// fetch is the store's Fetcher: it reads a block missing locally from the remote whose index
// lists it, and reads ahead for sequential readers (readahead.go). The store verifies the
// block it returns; read-ahead blocks are verified here when they arrive. A pack that is gone
// (another host's remote gc rewrote or deleted it) makes the cached index of that remote
// refresh once, and the read is tried again where the remote now keeps the block.
func (m *Manager) fetch(ctx context.Context, id store.ID) ([]byte, error) {
	out, err := m.fetchOnce(ctx, id)
	var gone *packGone
	if errors.As(err, &gone) {
		if rerr := m.refreshAfterGone(ctx, gone.remote); rerr != nil {
			return nil, fmt.Errorf("%w (refreshing the index: %v)", err, rerr)
		}
		out, err = m.fetchOnce(ctx, id)
	}
	return out, err
}

// packGone: the pack the cached index named is not in the bucket any more.
type packGone struct {
	remote string
	err    error
}

func (e *packGone) Error() string { return e.err.Error() }
func (e *packGone) Unwrap() error { return e.err }

// refreshAfterGone brings the cached index of remote up to date after a 404.
func (m *Manager) refreshAfterGone(ctx context.Context, remote string) error {
	b, err := m.backend(ctx, remote)
	if err != nil {
		return err
	}
	m.refreshMu.Lock()
	defer m.refreshMu.Unlock()
	return m.refresh(ctx, remote, b, nil)
}

func (m *Manager) fetchOnce(ctx context.Context, id store.ID) ([]byte, error) {
	l, ok, err := m.locate("", id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: no remote's index lists it", store.ErrNotFound)
	}
	readAhead := l.kind == KindData
	for try := 0; ; try++ {
		f, ahead, runs, seek, err := m.lazy.claim(m, located{id, l}, readAhead, store.Streaming(ctx))
		m.start(runs)
		if err == nil && seek != nil {
			runs, err = m.goOn(ctx, seek)
			m.start(runs)
		}
		if err != nil {
			m.o.Logger.Printf("remote %s: read-ahead: %v", l.remote, err)
		}
		out, err := m.lazy.take(ctx, f)
		if err != nil && ahead && try == 0 && ctx.Err() == nil {
			readAhead = false // fetch it again alone: the error, if any, is then this read's
			continue
		}
		if err != nil {
			return nil, err
		}
		if l.kind == KindData {
			m.cacheAdd(cached{id: id, size: int64(len(out))})
		}
		m.evict(ctx)
		return out, nil
	}
}

// fetchCache remembers the blocks fetched lazily, oldest first, to keep their total under
// Options.CacheLimit. The order is kept in Pebble too, so that the limit holds across
// restarts:
//
//	'X' 0 'f' seq     -> block id + size (seq: 8 bytes, increasing)
//	'X' 0 'g' id      -> seq (where the block sits in that order)
//
// (Remote names are never empty, so 'X' 0 is no remote's prefix.)
type fetchCache struct {
	mu     sync.Mutex
	loaded bool
	order  *list.List // of cached
	where  map[store.ID]*list.Element
	bytes  int64
	seq    uint64
}

type cached struct {
	id   store.ID
	size int64
	seq  uint64
}

func (c *fetchCache) init() {
	c.order = list.New()
	c.where = map[store.ID]*list.Element{}
}

func cacheOrderKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{branch.PrefixRemote, 0, 'f'}, seq)
}

func cacheSeqKey(id store.ID) []byte {
	return append([]byte{branch.PrefixRemote, 0, 'g'}, id[:]...)
}

// loadCache reads the fetch order from Pebble (once; callers hold c.mu).
func (m *Manager) loadCache() error {
	c := &m.cache
	if c.loaded {
		return nil
	}
	lo := []byte{branch.PrefixRemote, 0, 'f'}
	it, err := m.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		k, v := it.Key(), it.Value()
		if len(k) != len(lo)+8 || len(v) < 33 {
			continue
		}
		size, n := binary.Uvarint(v[32:])
		if n <= 0 {
			continue
		}
		ce := cached{id: store.ID(v[:32]), size: int64(size), seq: binary.BigEndian.Uint64(k[len(lo):])}
		if e, ok := c.where[ce.id]; ok {
			c.bytes -= e.Value.(cached).size
			c.order.Remove(e)
		}
		c.where[ce.id] = c.order.PushBack(ce)
		c.bytes += ce.size
		c.seq = max(c.seq, ce.seq)
	}
	c.loaded = true
	return it.Error()
}

// cacheAdd records fetched blocks as the newest in the fetch order.
func (m *Manager) cacheAdd(blocks ...cached) {
	if len(blocks) == 0 {
		return
	}
	c := &m.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := m.loadCache(); err != nil {
		m.o.Logger.Printf("remote: reading the fetch cache order: %v", err)
	}
	b := m.db.NewBatch()
	defer b.Close()
	for _, bl := range blocks {
		if e, ok := c.where[bl.id]; ok {
			old := c.order.Remove(e).(cached)
			c.bytes -= old.size
			b.Delete(cacheOrderKey(old.seq), nil)
		}
		c.seq++
		ce := cached{bl.id, bl.size, c.seq}
		c.where[bl.id] = c.order.PushBack(ce)
		c.bytes += bl.size
		b.Set(cacheOrderKey(ce.seq), binary.AppendUvarint(bytes.Clone(bl.id[:]), uint64(bl.size)), nil)
		b.Set(cacheSeqKey(bl.id), binary.BigEndian.AppendUint64(nil, ce.seq), nil)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		m.o.Logger.Printf("remote: recording fetched blocks: %v", err)
	}
}

// evict deletes the oldest fetched blocks while the cache is over its limit. Only blocks that
// a remote lists now are deleted (the indexes of the remotes concerned are refreshed first),
// so every evicted block can be fetched again. A block stored again meanwhile (e.g. a local
// write of the same content) is spared by the store's GC window.
func (m *Manager) evict(ctx context.Context) {
	limit := m.o.CacheLimit
	if limit < 0 {
		return
	}
	c := &m.cache
	c.mu.Lock()
	if err := m.loadCache(); err != nil || c.bytes <= limit {
		c.mu.Unlock()
		return
	}
	var olds []cached
	for c.bytes > limit-limit/8 && c.order.Len() > 0 {
		e := c.order.Front()
		ce := c.order.Remove(e).(cached)
		delete(c.where, ce.id)
		c.bytes -= ce.size
		olds = append(olds, ce)
	}
	b := m.db.NewBatch()
	for _, ce := range olds {
		b.Delete(cacheOrderKey(ce.seq), nil)
		b.Delete(cacheSeqKey(ce.id), nil)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		m.o.Logger.Printf("remote: evicting cached blocks: %v", err)
	}
	b.Close()
	c.mu.Unlock()

	// What the remotes list now, not what this host last saw.
	remotes := map[string]bool{}
	for _, ce := range olds {
		if l, ok, err := m.locate("", ce.id); err == nil && ok {
			remotes[l.remote] = true
		}
	}
	for r := range remotes {
		if err := m.refreshAfterGone(ctx, r); err != nil {
			m.o.Logger.Printf("remote %s: not evicting: refreshing its index: %v", r, err)
			return
		}
	}
	var safe []store.ID
	for _, ce := range olds {
		if _, ok, err := m.locate("", ce.id); err == nil && ok {
			safe = append(safe, ce.id)
		}
	}
	w, err := m.st.BeginGC()
	if err != nil {
		return // a garbage collection runs; evict later
	}
	defer w.End()
	n, _, err := w.Delete(ctx, safe)
	if err != nil && !errors.Is(err, context.Canceled) {
		m.o.Logger.Printf("remote: evicting cached blocks: %v", err)
	}
	m.stats.Evicted.Add(int64(n))
}

// Holds reports whether some remote's index lists block id.
func (m *Manager) Holds(id store.ID) (bool, error) {
	_, ok, err := m.locate("", id)
	return ok, err
}

// FetchVerified reads block id from a remote that lists it and checks its hash, for fsck.
func (m *Manager) FetchVerified(ctx context.Context, id store.ID) ([]byte, error) {
	data, err := m.fetch(ctx, id)
	if err != nil {
		return nil, err
	}
	if store.Sum(data) != id {
		return nil, fmt.Errorf("%w: block %s in the remote does not match its hash", ErrCorrupt, id)
	}
	return data, nil
}
