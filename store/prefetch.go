package store

import (
	"context"
	"sync"
)

// Read-ahead of blocks (issue 17, cold sequential reads). A cold read of one 64 KiB block is
// one synchronous disk read, and on a virtual disk that costs 150-600 µs however large the
// disk's bandwidth: a reader that asks for one block after another gets a tenth of the disk.
// A sequential reader's next blocks are therefore read ahead in the background, several at
// once (package work decides which), decoded and verified against their hash like every
// read, and kept here until the reader asks for them. Blocks are immutable and named by
// their hash, so a kept block never needs invalidating: whoever asks for that ID wants
// exactly these bytes.
//
// A failed read-ahead keeps nothing and reports nothing: the reader's own Get reads the block
// again and fails with the error then, so a corrupt block fails only the read that needs it.

// aheadMax bounds the blocks kept (64 KiB each): a reader that stops early leaves what it
// did not take, and the oldest goes first.
const aheadMax = 128

type aheadCache struct {
	mu       sync.Mutex
	blocks   map[ID][]byte
	order    []ID                 // insertion order, for eviction; may hold IDs already taken
	inflight map[ID]chan struct{} // read-aheads running, closed when done
}

// begin marks a read-ahead of id as running; false if one runs or the block is kept.
func (c *aheadCache) begin(id ID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.blocks[id]; ok {
		return false
	}
	if _, ok := c.inflight[id]; ok {
		return false
	}
	if c.inflight == nil {
		c.inflight = map[ID]chan struct{}{}
	}
	c.inflight[id] = make(chan struct{})
	return true
}

// end keeps data (nil: the read-ahead failed) and wakes the readers waiting for id.
func (c *aheadCache) end(id ID, data []byte) {
	if data != nil {
		c.put(id, data)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	close(c.inflight[id])
	delete(c.inflight, id)
}

// wait waits for a running read-ahead of id, if any, so that a reader that catches up with
// the read-ahead does not read and verify the same block a second time.
func (c *aheadCache) wait(ctx context.Context, id ID) {
	c.mu.Lock()
	ch := c.inflight[id]
	c.mu.Unlock()
	if ch != nil {
		select {
		case <-ch:
		case <-ctx.Done():
		}
	}
}

func (c *aheadCache) put(id ID, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.blocks == nil {
		c.blocks = map[ID][]byte{}
	}
	if _, ok := c.blocks[id]; ok {
		return
	}
	for len(c.blocks) >= aheadMax && len(c.order) > 0 {
		delete(c.blocks, c.order[0])
		c.order = c.order[1:]
	}
	c.blocks[id] = data
	c.order = append(c.order, id)
	if len(c.order) > 4*aheadMax { // taken IDs pile up in order; compact
		live := c.order[:0]
		for _, o := range c.order {
			if _, ok := c.blocks[o]; ok {
				live = append(live, o)
			}
		}
		c.order = live
	}
}

// take returns and forgets the kept block id.
func (c *aheadCache) take(id ID) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	data, ok := c.blocks[id]
	if ok {
		delete(c.blocks, id)
	}
	return data, ok
}

func (c *aheadCache) has(id ID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.blocks[id]
	return ok
}

func (c *aheadCache) drop(id ID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.blocks, id)
}

// Background runs fn in a goroutine unless the store is closing, and reports whether it did.
// Close waits for every fn started, so fn may use the store and its Pebble DB.
func (s *Store) Background(fn func()) bool {
	s.bgMu.Lock()
	defer s.bgMu.Unlock()
	if s.closing {
		return false
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		fn()
	}()
	return true
}

// stopBackground makes Background refuse new work and waits for what runs.
func (s *Store) stopBackground() {
	s.bgMu.Lock()
	s.closing = true
	s.bgMu.Unlock()
	s.bg.Wait()
}

// Prefetch reads block id from this repository (never from a remote), verifies it and keeps
// it for the next Get of id. It reports whether the block is kept; it logs nothing (the
// reader's own Get reports a bad block). Call it from Background.
func (s *Store) Prefetch(id ID) bool {
	if !s.ahead.begin(id) {
		return s.ahead.has(id)
	}
	var out []byte
	defer func() { s.ahead.end(id, out) }()
	v, c, err := s.db.Get(blockKey(id))
	if err != nil {
		return false
	}
	data, err := decodeValue(nil, v)
	c.Close()
	if err != nil || Sum(data) != id {
		return false
	}
	out = data
	return true
}

// Prefetched reports whether block id is kept by a read-ahead (tests).
func (s *Store) Prefetched(id ID) bool { return s.ahead.has(id) }

// ReadAheadHits counts the Gets served by a block read ahead.
func (s *Store) ReadAheadHits() uint64 { return s.aheadHits.Load() }

// WaitBackground waits for the Background work started so far. Tests call it between reads
// (never concurrently with Background) to make read-ahead deterministic.
func (s *Store) WaitBackground() { s.bg.Wait() }
