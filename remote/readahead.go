package remote

import (
	"container/list"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"syscall"

	"github.com/cockroachdb/pebble/v2"

	"github.com/agentfs/agentfs/backends"
	"github.com/agentfs/agentfs/internal/metrics"
	"github.com/agentfs/agentfs/store"
)

// Lazy reads. A block missing locally is fetched from the remote whose index lists it. Push
// writes a file's blocks in order, so a reader going through a file goes through its packs in
// order; the lazy reader follows such readers ("streams", by pack offset) and fetches ahead
// of them:
//
//   - A read that continues no stream is fetched alone (one GET of one block): random readers
//     cost one round trip per block and fetch nothing they do not read.
//   - From a stream's third read in a row, a read that continues it fetches, with its own
//     block, the blocks that follow, up to a window of twice what the reader has read in this
//     stream (at most Options.ReadAhead), in ranged GETs of adjacent blocks (at most raGet
//     bytes each), several in flight at once.
//   - The last block of each such GET is a marker: it waits in memory, verified, for its
//     reader; the other blocks are verified and stored as they arrive, off the reader's path,
//     and the reader reads them locally. When the reader reaches a marker (it came in order:
//     no marker before it left behind), it read what comes before too, and the window is
//     topped up: it doubles while the reader keeps going. A read past a marker not reached
//     yet is a random read that landed there: fetched alone, and the stream stays.
//   - A reader that runs off the end of a pack and goes on at the start of another keeps its
//     window (push splits a large file across packs). Better: when a window reaches the end of
//     its pack, the reader tells which blocks of its file come next (store.Sequel); if the
//     block after the pack's last one starts another pack, the rest of the window is read
//     ahead there (stream.cont), before the reader gets there.
//   - A reader that its FUSE handle's read-ahead knows to read its file in order
//     (store.Streaming) gets a window of at least raStart from its third read on.
//
// What waits in memory (markers, blocks in flight) is bounded by 4 windows; the oldest
// markers not reached are dropped first. A block is never fetched twice at once: every fetch,
// asked for or ahead, is a flight that later askers wait for, and a block a reader took stays
// a little while (raTaken) for the other readers of it that come before the store has it. A
// block read ahead that fails (a bad GET, a corrupt entry) fails only itself: the reader that
// reaches it fetches it again alone and gets the error as any single fetch would.

const (
	raGet     = 1 << 20 // largest ranged GET of read-ahead
	raStreams = 32      // streams followed at once
	raTaken   = 64      // blocks kept after their reader took them
	// raStart is the smallest window of a stream whose reader is known to read its file in
	// order (store.Streaming): it reaches full speed a few round trips sooner.
	raStart = 4 << 20
)

type lazyReader struct {
	mu      sync.Mutex
	flights map[store.ID]*flight
	ahead   list.List // blocks read ahead, fetched and not asked for yet, oldest first
	taken   list.List // blocks fetched and taken by a reader, newest last (at most raTaken)
	streams []*stream // most recently used first
	held    int64     // bytes of the flights in the map
	window  int64     // the largest window (0: no read-ahead)
	budget  int64     // bound on held for read-ahead

	ctx    context.Context // GETs run under it, not under one reader's: others may wait
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// A flight is one block being fetched, or read ahead and waiting for its reader.
type flight struct {
	id    store.ID
	loc   location
	s     *stream // the stream it was read ahead for; nil: a reader asked for it
	size  int64   // bytes counted in lazyReader.held
	done  chan struct{}
	data  []byte // verified content, once done without err
	err   error
	elem  *list.Element // in lazyReader.ahead while done and not asked for, then in taken
	taken bool          // a reader took it: it is in lazyReader.taken, outside held
	// marker: a block read ahead that waits in memory for its reader, who then tells the
	// stream how far it got (the last block read ahead of each GET). The others enter the
	// store as soon as they arrive, and the reader finds them there.
	marker  bool
	reached bool // the marker's reader came (or the marker is gone)
}

type stream struct {
	remote string
	pack   store.ID
	next   uint64   // pack offset after the last block the reader asked for
	ahead  uint64   // pack offset up to which blocks are fetched or in flight
	read   int64    // bytes the reader asked for in this stream
	reads  int      // reads that went on with this stream (misses, and hits of markers)
	marks  []uint64 // offsets of the markers its reader has not reached, in order
	end    bool     // the read-ahead reached the end of the pack's data
	// cont is the stream of the pack where the file goes on after this pack's data, read
	// ahead before the reader gets there; sought: it was looked for (once).
	cont   *stream
	sought bool
	// streaming: its reader is known to read its file in order (store.Streaming).
	streaming bool
}

func (r *lazyReader) init(window int64) {
	r.flights = map[store.ID]*flight{}
	r.window = max(window, 0)
	r.budget = 4 * r.window
	r.ctx, r.cancel = context.WithCancel(context.Background())
}

// close cancels the GETs in flight and waits for them.
func (r *lazyReader) close() {
	r.cancel()
	r.wg.Wait()
}

// windowOf is how far ahead of its reader s is fetched: nothing before its third read in a
// row (a random read of 4 KiB across two blocks is two reads in a row).
func (r *lazyReader) windowOf(s *stream) int64 {
	if s.reads < 3 {
		return 0
	}
	if s.streaming {
		return min(max(2*s.read, raStart), r.window)
	}
	return min(2*s.read, r.window)
}

// claim returns the flight that brings block o (a new one, or one already in flight or read
// ahead) and the runs of new flights to fetch, one ranged GET each. ahead is whether the
// flight was read ahead (its failure is then not the reader's: it fetches again alone).
//
// seek is a stream whose read-ahead reached the end of its pack's data: the caller looks for
// where the file goes on (goOn), outside the lock.
func (r *lazyReader) claim(m *Manager, o located, readAhead, streaming bool) (f *flight, ahead bool, runs [][]*flight, seek *stream, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if f := r.flights[o.id]; f != nil {
		s := f.s
		if s == nil || !readAhead || f.taken {
			return f, s != nil && !f.taken, nil, nil, nil
		}
		// The reader reached a block read ahead. If it came in order (no marker before this
		// block left behind), it read the blocks stored before it too: go on ahead of it.
		// Else it is a random read that landed here.
		credit := s.credit(o.loc.off)
		r.reached(f)
		if !credit {
			return f, true, nil, nil, nil
		}
		s.advance(o.loc, true)
		s.streaming = s.streaming || streaming
		r.touch(s)
		more, seek, err := r.topUp(m, s)
		return f, true, mark(chop(more)), seek, err
	}
	f = r.add(o, nil)
	m.stats.Misses.Add(1)
	if !readAhead || r.window == 0 {
		return f, false, [][]*flight{{f}}, nil, nil
	}
	s, err := r.follow(m, o.loc)
	if err != nil || s == nil {
		return f, false, [][]*flight{{f}}, nil, err
	}
	// Past a marker its reader did not reach, the reader skipped what was read ahead: this
	// is a random read, fetched alone, and the stream stays where it is.
	if !s.credit(o.loc.off) {
		return f, false, [][]*flight{{f}}, nil, nil
	}
	s.advance(o.loc, true)
	s.streaming = s.streaming || streaming
	s.ahead = max(s.ahead, s.next)
	more, seek, err := r.topUp(m, s)
	return f, false, mark(chop(append([]*flight{f}, more...))), seek, err
}

// mark makes the last block read ahead of each run a marker.
func mark(runs [][]*flight) [][]*flight {
	for _, run := range runs {
		if f := run[len(run)-1]; f.s != nil {
			f.marker = true
			i, _ := slices.BinarySearch(f.s.marks, f.loc.off)
			f.s.marks = slices.Insert(f.s.marks, i, f.loc.off)
		}
	}
	return runs
}

// reached notes that f is no longer a marker waiting for its reader (it came, or f is gone).
func (r *lazyReader) reached(f *flight) {
	if f.marker && !f.reached {
		f.reached = true
		if i, ok := slices.BinarySearch(f.s.marks, f.loc.off); ok {
			f.s.marks = slices.Delete(f.s.marks, i, i+1)
		}
	}
}

// credit reports whether a read at off comes in order: before every marker not reached yet.
func (s *stream) credit(off uint64) bool { return len(s.marks) == 0 || off <= s.marks[0] }

// follow returns the stream that a read at l continues, or nil after starting a new one.
func (r *lazyReader) follow(m *Manager, l location) (*stream, error) {
	for _, s := range r.streams {
		// A read goes on with a stream if it is where the stream's reader is, or within what
		// was fetched for it. Nothing looser: a random reader would join streams and make
		// them fetch ahead of it.
		if s.remote == l.remote && s.pack == l.pack && l.off >= s.next && l.off <= s.ahead {
			r.touch(s)
			return s, nil
		}
	}
	s := &stream{remote: l.remote, pack: l.pack, next: l.off, ahead: l.off}
	var found *stream
	first, err := m.firstInPack(l)
	if err != nil {
		return nil, err
	}
	if first {
		for _, o := range r.streams {
			if o.end && len(o.marks) == 0 && r.windowOf(o) > 0 {
				found = o
				break
			}
		}
	}
	if found != nil {
		s.read, s.reads, s.streaming = found.read, found.reads, found.streaming
		r.drop(found)
	}
	r.streams = append([]*stream{s}, r.streams...)
	if len(r.streams) > raStreams {
		r.streams = r.streams[:raStreams]
	}
	if found == nil {
		s.advance(l, false)
		s.ahead = s.next
		return nil, nil
	}
	return s, nil
}

// advance moves s to its reader's read at l. With credit (the read comes in order), the reader
// read what comes before l too (the blocks stored ahead, which it reads locally); else the
// read counts for itself only, so that jumps do not grow the window.
func (s *stream) advance(l location, credit bool) {
	s.reads++
	end := l.off + uint64(l.length)
	if end <= s.next {
		return
	}
	if credit && l.off <= s.ahead {
		s.read += int64(end - s.next)
	} else {
		s.read += int64(l.length)
	}
	s.next = end
}

func (r *lazyReader) touch(s *stream) {
	if len(r.streams) > 0 && r.streams[0] == s {
		return
	}
	r.drop(s)
	r.streams = append([]*stream{s}, r.streams...)
}

func (r *lazyReader) drop(s *stream) {
	for i, o := range r.streams {
		if o == s {
			r.streams = append(r.streams[:i], r.streams[i+1:]...)
			return
		}
	}
}

// topUp adds flights for the blocks that follow s.ahead, until the window ahead of the reader
// is full or the memory bound is reached. Where the pack's data ends, the window goes on in
// the pack where the file goes on (s.cont), if known; else seek is the stream whose pack
// ended, for the caller to look for it.
func (r *lazyReader) topUp(m *Manager, s *stream) (out []*flight, seek *stream, err error) {
	w := r.windowOf(s)
	left := w
	for c := s; c != nil && left > 0; c = c.cont {
		more, err := r.fill(m, c, c.next+uint64(left), w)
		out = append(out, more...)
		if err != nil || !c.end {
			return out, nil, err
		}
		if c.ahead > c.next {
			left -= int64(c.ahead - c.next)
		}
		if c.cont == nil && !c.sought && left > 0 {
			c.sought = true
			return out, c, nil
		}
	}
	return out, nil, nil
}

// fill adds flights for the blocks of s's pack that follow s.ahead, up to want, until the
// pack's data ends or the memory bound is reached. It waits for a gap of a quarter window w
// (at most raGet) before fetching, so that GETs are not one block each.
func (r *lazyReader) fill(m *Manager, s *stream, want uint64, w int64) ([]*flight, error) {
	if s.end || want <= s.ahead {
		return nil, nil
	}
	if s.ahead > s.next && int64(want-s.ahead) < min(w/4, raGet) {
		return nil, nil
	}
	lo := remoteKey(s.remote, 'o', s.pack[:], binary.BigEndian.AppendUint64(nil, s.ahead))
	hi := prefixEnd(remoteKey(s.remote, 'o', s.pack[:]))
	it, err := m.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []*flight
	it.First()
	for ; it.Valid(); it.Next() {
		e, ok := packEntry(s.remote, s.pack, it.Key(), it.Value())
		if !ok || e.loc.kind != KindData {
			s.end = true
			break
		}
		if e.loc.off >= want {
			break
		}
		if r.flights[e.id] == nil {
			if local, err := m.st.Has(r.ctx, e.id); err != nil {
				return out, err
			} else if !local {
				if !r.makeRoom(m, int64(e.loc.length)) {
					break
				}
				out = append(out, r.add(e, s))
			}
		}
		s.ahead = e.loc.off + uint64(e.loc.length)
	}
	if !it.Valid() {
		s.end = true
	}
	return out, it.Error()
}

// raSequel bounds the blocks of a file that goOn looks through for the end of a pack.
const raSequel = 4096

// goOn looks for the pack where the file read by s's reader goes on after the end of s's
// pack (push splits a large file across packs), and starts reading it ahead, with what is
// left of the window, before the reader gets there. The file's next blocks come from the
// reader (store.Sequel on ctx): the block after the pack's last one is where it goes on, if
// it starts another pack. It returns the runs to fetch.
func (m *Manager) goOn(ctx context.Context, s *stream) ([][]*flight, error) {
	var runs [][]*flight
	for head := s; s != nil; { // the window may reach the end of the next pack too
		var more [][]*flight
		var err error
		more, s, err = m.goOnOnce(ctx, head, s)
		if runs = append(runs, more...); err != nil {
			return runs, err
		}
	}
	return runs, nil
}

// goOnOnce looks for where the file goes on after s's pack; head is the stream its reader is
// in (s itself, or a stream that goes on in s).
func (m *Manager) goOnOnce(ctx context.Context, head, s *stream) ([][]*flight, *stream, error) {
	sequel := store.SequelOf(ctx)
	if sequel == nil {
		return nil, nil, nil
	}
	r := &m.lazy
	r.mu.Lock()
	remote, pack, end := s.remote, s.pack, s.ahead
	r.mu.Unlock()
	last, ok, err := m.entryBefore(remote, pack, end)
	if err != nil || !ok {
		return nil, nil, err
	}
	var next store.ID
	found, seen, n := false, false, 0
	sequel(func(id store.ID) bool {
		if seen {
			next, found = id, true
			return false
		}
		seen = id == last.id
		n++
		return n < raSequel
	})
	if !found {
		return nil, nil, nil
	}
	l, ok, err := m.locate(remote, next)
	if err != nil || !ok || l.kind != KindData || l.pack == pack {
		return nil, nil, err
	}
	if first, err := m.firstInPack(l); err != nil || !first {
		return nil, nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if s.cont != nil || !slices.Contains(r.streams, s) {
		return nil, nil, nil
	}
	for _, o := range r.streams {
		if o.remote == l.remote && o.pack == l.pack && l.off >= o.next && l.off <= o.ahead {
			return nil, nil, nil // the reader got there first
		}
	}
	s.cont = &stream{remote: l.remote, pack: l.pack, next: l.off, ahead: l.off, read: s.read, reads: s.reads, streaming: s.streaming}
	r.streams = append([]*stream{s.cont}, r.streams...)
	if len(r.streams) > raStreams {
		r.streams = r.streams[:raStreams]
	}
	m.stats.AheadPacks.Add(1)
	more, seek, err := r.topUp(m, head)
	return mark(chop(more)), seek, err
}

// entryBefore returns the entry of pack that comes last before offset off.
func (m *Manager) entryBefore(remote string, pack store.ID, off uint64) (located, bool, error) {
	it, err := m.db.NewIter(&pebble.IterOptions{LowerBound: remoteKey(remote, 'o', pack[:]), UpperBound: remoteKey(remote, 'o', pack[:], binary.BigEndian.AppendUint64(nil, off))})
	if err != nil {
		return located{}, false, err
	}
	var e located
	ok := it.Last()
	if ok {
		e, ok = packEntry(remote, pack, it.Key(), it.Value())
	}
	return e, ok, errors.Join(it.Error(), it.Close())
}

// packEntry decodes an 'o' key of the cached index: the entry of pack at some offset.
func packEntry(remote string, pack store.ID, k, v []byte) (located, bool) {
	if len(k) < 8 || len(v) < 34 {
		return located{}, false
	}
	length, n := binary.Uvarint(v[33:])
	if n <= 0 {
		return located{}, false
	}
	off := binary.BigEndian.Uint64(k[len(k)-8:])
	return located{store.ID(v[:32]), location{remote: remote, pack: pack, off: off, length: uint32(length), kind: v[32]}}, true
}

// firstInPack reports whether no entry of its pack comes before l (a data pack holds only
// data, so this is where its data starts).
func (m *Manager) firstInPack(l location) (bool, error) {
	lo := remoteKey(l.remote, 'o', l.pack[:])
	it, err := m.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: remoteKey(l.remote, 'o', l.pack[:], binary.BigEndian.AppendUint64(nil, l.off))})
	if err != nil {
		return false, err
	}
	first := !it.First()
	return first, errors.Join(it.Error(), it.Close())
}

// makeRoom drops the oldest blocks read ahead and not asked for until n more bytes fit in the
// budget; false if they do not (the rest is in flight).
func (r *lazyReader) makeRoom(m *Manager, n int64) bool {
	for r.held+n > r.budget {
		e := r.ahead.Front()
		if e == nil {
			return false
		}
		r.forget(e.Value.(*flight))
		m.stats.AheadDropped.Add(1)
	}
	return true
}

func (r *lazyReader) add(o located, s *stream) *flight {
	f := &flight{id: o.id, loc: o.loc, s: s, size: int64(o.loc.length), done: make(chan struct{})}
	r.flights[o.id] = f
	r.held += f.size
	return f
}

// forget removes f from the map (callers hold r.mu).
func (r *lazyReader) forget(f *flight) {
	r.reached(f)
	if r.flights[f.id] == f {
		delete(r.flights, f.id)
		if !f.taken {
			r.held -= f.size
		}
	}
	if f.elem != nil {
		if f.taken {
			r.taken.Remove(f.elem)
		} else {
			r.ahead.Remove(f.elem)
		}
		f.elem = nil
	}
}

// markTaken moves f, fetched, to the blocks taken by a reader: it stays there (a little while)
// for another reader asking for it before the store has it, and out of the read-ahead budget.
func (r *lazyReader) markTaken(f *flight) {
	if f.taken || r.flights[f.id] != f {
		return
	}
	if f.elem != nil {
		r.ahead.Remove(f.elem)
	}
	r.held -= f.size
	f.taken = true
	f.elem = r.taken.PushBack(f)
	for r.taken.Len() > raTaken {
		r.forget(r.taken.Front().Value.(*flight))
	}
}

// chop cuts flights (in pack order, pack after pack) into runs of adjacent entries of at most raGet
// bytes: one ranged GET each.
func chop(fs []*flight) [][]*flight {
	var runs [][]*flight
	start := 0
	for i := 1; i <= len(fs); i++ {
		if i < len(fs) {
			prev := fs[i-1].loc
			if fs[i].loc.pack == prev.pack && fs[i].loc.off == prev.off+uint64(prev.length) && fs[i].loc.off+uint64(fs[i].loc.length)-fs[start].loc.off <= raGet {
				continue
			}
		}
		runs = append(runs, fs[start:i])
		start = i
	}
	return runs
}

// start fetches each run in its own goroutine.
func (m *Manager) start(runs [][]*flight) {
	r := &m.lazy
	for _, run := range runs {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			m.fetchRun(run)
		}()
	}
}

// fetchRun reads a run with one ranged GET, verifies (and decrypts) each entry and completes
// its flights. A bad entry fails only its own flight.
func (m *Manager) fetchRun(run []*flight) {
	r := &m.lazy
	first, last := run[0].loc, run[len(run)-1].loc
	errs := make([]error, len(run))
	contents := make([][]byte, len(run))
	data, err := m.readRun(r.ctx, first, last)
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
	} else {
		metrics.FetchedBytes.Add(float64(len(data)))
		ring, err := m.ring(r.ctx, first.remote)
		for i, f := range run {
			if err != nil {
				errs[i] = err
				continue
			}
			rel := f.loc.off - first.off
			contents[i], errs[i] = ring.decodeObject(f.id, data[rel:rel+uint64(f.loc.length)])
			if errs[i] != nil {
				m.o.Logger.Printf("remote %s: pack %s: %v", first.remote, first.pack, errs[i])
			} else {
				m.stats.Fetched.Add(1)
				m.stats.FetchedBytes.Add(int64(len(contents[i])))
			}
		}
	}
	// Publish every block (a reader may wait for any); keep the markers in memory, and store
	// the others now, off the reader's path.
	var store []*flight
	r.mu.Lock()
	for i, f := range run {
		f.data, f.err = contents[i], errs[i]
		switch {
		case f.err != nil:
			r.forget(f)
		case f.s == nil:
			r.markTaken(f) // its reader waits for it
		case r.flights[f.id] != f:
		case f.marker:
			r.held += int64(len(f.data)) - f.size
			f.size = int64(len(f.data))
			f.elem = r.ahead.PushBack(f)
		default:
			store = append(store, f)
		}
		close(f.done)
	}
	r.mu.Unlock()
	if len(store) == 0 {
		return
	}
	var stored []cached
	for _, f := range store {
		if err := m.st.PutVerified(r.ctx, f.id, f.data); err != nil { // decodeObject verified it
			if !errors.Is(err, syscall.ENOSPC) && r.ctx.Err() == nil {
				m.o.Logger.Printf("remote: storing a block read ahead: %v", err)
			}
			continue
		}
		stored = append(stored, cached{id: f.id, size: int64(len(f.data))})
	}
	m.cacheAdd(stored...)
	r.mu.Lock()
	for _, f := range store {
		if f.taken || r.flights[f.id] != f {
			continue
		}
		if slices.ContainsFunc(stored, func(c cached) bool { return c.id == f.id }) {
			r.forget(f)
		} else { // not stored: it waits in memory for its reader
			r.held += int64(len(f.data)) - f.size
			f.size = int64(len(f.data))
			f.elem = r.ahead.PushBack(f)
		}
	}
	r.mu.Unlock()
}

func (m *Manager) readRun(ctx context.Context, first, last location) ([]byte, error) {
	b, err := m.backend(ctx, first.remote)
	if err != nil {
		return nil, err
	}
	data, err := readAll(ctx, b, packKey(first.pack), int64(first.off), int64(last.off+uint64(last.length)-first.off))
	if err != nil {
		err = fmt.Errorf("remote %s: read pack %s: %w", first.remote, first.pack, err)
		if errors.Is(err, backends.ErrNotExist) {
			return nil, &packGone{first.remote, err}
		}
	}
	return data, err
}

// take waits for f and returns its content; a block read ahead leaves the memory it held.
func (r *lazyReader) take(ctx context.Context, f *flight) ([]byte, error) {
	select {
	case <-f.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if f.err != nil {
		return nil, f.err
	}
	r.mu.Lock()
	r.markTaken(f)
	r.mu.Unlock()
	return f.data, nil
}
