package store

import "sync"

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
	mu     sync.Mutex
	blocks map[ID][]byte
	order  []ID // insertion order, for eviction; may hold IDs already taken
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
	if s.ahead.has(id) {
		return true
	}
	v, c, err := s.db.Get(blockKey(id))
	if err != nil {
		return false
	}
	out, err := decodeValue(nil, v)
	c.Close()
	if err != nil || Sum(out) != id {
		return false
	}
	s.ahead.put(id, out)
	return true
}

// Prefetched reports whether block id is kept by a read-ahead (tests).
func (s *Store) Prefetched(id ID) bool { return s.ahead.has(id) }

// ReadAheadHits counts the Gets served by a block read ahead.
func (s *Store) ReadAheadHits() uint64 { return s.aheadHits.Load() }

// WaitBackground waits for the Background work started so far. Tests call it between reads
// (never concurrently with Background) to make read-ahead deterministic.
func (s *Store) WaitBackground() { s.bg.Wait() }
