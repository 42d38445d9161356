package remote

import (
	"container/list"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/cockroachdb/pebble/v2"

	"github.com/agentfs/agentfs/backends"
	"github.com/agentfs/agentfs/internal/metrics"
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
			content, err := decodeObject(o.id, data[rel:rel+uint64(o.loc.length)])
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
// lists it, with the next blocks of the same pack (read-ahead). The store verifies the block
// it returns; read-ahead blocks are verified here before they are stored.
func (m *Manager) fetch(ctx context.Context, id store.ID) ([]byte, error) {
	l, ok, err := m.locate("", id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: no remote's index lists it", store.ErrNotFound)
	}
	b, err := m.backend(ctx, l.remote)
	if err != nil {
		return nil, err
	}
	run := []located{{id, l}}
	if l.kind == KindData && m.o.ReadAhead > 0 {
		if run, err = m.readAhead(ctx, run, m.o.ReadAhead); err != nil {
			return nil, err
		}
	}
	last := run[len(run)-1].loc
	data, err := readAll(ctx, b, packKey(l.pack), int64(l.off), int64(last.off+uint64(last.length)-l.off))
	if err != nil {
		return nil, fmt.Errorf("remote %s: read pack %s: %w", l.remote, l.pack, err)
	}
	metrics.FetchedBytes.Add(float64(len(data)))
	var out []byte
	for i, o := range run {
		rel := o.loc.off - l.off
		content, err := decodeObject(o.id, data[rel:rel+uint64(o.loc.length)])
		if err != nil {
			m.o.Logger.Printf("remote %s: pack %s: %v", l.remote, l.pack, err)
			if i == 0 {
				return nil, err
			}
			break // a bad read-ahead block is fetched (and reported) again when it is read
		}
		if i == 0 {
			out = content
		} else if _, err := m.st.Put(ctx, content); err != nil {
			return nil, err
		}
		m.stats.Fetched.Add(1)
		m.stats.FetchedBytes.Add(int64(len(content)))
		if o.loc.kind == KindData {
			m.cache.add(o.id, int64(len(content)))
		}
	}
	m.evict(ctx)
	return out, nil
}

// readAhead extends run with up to n data blocks that follow it contiguously in its pack and
// are not stored locally.
func (m *Manager) readAhead(ctx context.Context, run []located, n int) ([]located, error) {
	l := run[0].loc
	lo := remoteKey(l.remote, 'o', l.pack[:], binary.BigEndian.AppendUint64(nil, l.off+uint64(l.length)))
	hi := prefixEnd(remoteKey(l.remote, 'o', l.pack[:]))
	it, err := m.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	end := l.off + uint64(l.length)
	for it.First(); it.Valid() && len(run) <= n; it.Next() {
		k, v := it.Key(), it.Value()
		off := binary.BigEndian.Uint64(k[len(k)-8:])
		if off != end || len(v) < 34 || v[32] != KindData {
			break
		}
		length, k2 := binary.Uvarint(v[33:])
		if k2 <= 0 {
			break
		}
		id := store.ID(v[:32])
		if ok, err := m.st.Has(ctx, id); err != nil || ok {
			break
		}
		run = append(run, located{id, location{remote: l.remote, pack: l.pack, off: off, length: uint32(length), kind: KindData}})
		end = off + length
	}
	return run, it.Error()
}

// fetchCache remembers the blocks fetched lazily, oldest first, to keep their total under
// Options.CacheLimit.
type fetchCache struct {
	mu    sync.Mutex
	order *list.List // of cached
	where map[store.ID]*list.Element
	bytes int64
}

type cached struct {
	id   store.ID
	size int64
}

func (c *fetchCache) init() {
	c.order = list.New()
	c.where = map[store.ID]*list.Element{}
}

func (c *fetchCache) add(id store.ID, size int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.where[id]; ok {
		c.order.MoveToBack(e)
		return
	}
	c.where[id] = c.order.PushBack(cached{id, size})
	c.bytes += size
}

// evict deletes the oldest fetched blocks while the cache is over its limit. Only blocks that
// a remote's index lists are deleted, so every evicted block can be fetched again. A block
// stored again meanwhile (e.g. a local write of the same content) is spared by the store's
// GC window.
func (m *Manager) evict(ctx context.Context) {
	limit := m.o.CacheLimit
	if limit < 0 {
		return
	}
	c := &m.cache
	c.mu.Lock()
	if c.bytes <= limit {
		c.mu.Unlock()
		return
	}
	var ids []store.ID
	for c.bytes > limit-limit/8 && c.order.Len() > 0 {
		e := c.order.Front()
		ce := c.order.Remove(e).(cached)
		delete(c.where, ce.id)
		c.bytes -= ce.size
		ids = append(ids, ce.id)
	}
	c.mu.Unlock()
	safe := ids[:0]
	for _, id := range ids {
		if _, ok, err := m.locate("", id); err == nil && ok {
			safe = append(safe, id)
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
		return nil, fmt.Errorf("%w: block %s in the remote does not match its hash", store.ErrCorrupt, id)
	}
	return data, nil
}
