package work

import (
	"hash/maphash"
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// overlayIndex holds the keys of the workspace's overlay, working pages aside, so that get
// asks Pebble only for keys the overlay holds and goes straight to the base tree for the
// rest.
//
// A branch forked a moment ago has an empty overlay, and an agent's branch changes a few
// hundred keys while it reads hundreds of thousands from its base (a build, git status, a
// test run). Each of those reads first missed in the overlay, and Pebble reads no bloom
// filter at the last level (UseL6Filters is off for Get), so each miss loaded an index and a
// data block: with 16 agents building on 16 branches, the block loads were 14% of the
// daemon's CPU and most of its allocation, and the GC another 28%.
//
// Every non-page key enters the overlay through Txn.set or Txn.del, and Txn.commit adds the
// keys here before the batch commits. Whatever else writes the overlay (a checkpoint moving
// to a new overlay with the writes it carried, rollback, merge, pull) calls one of the
// *Locked methods that invalidate the index; the next get rebuilds it with one scan of the
// overlay's non-page keys.
//
// The index is a chain of Bloom filters, each twice the capacity of the one before (10 bits
// a key, about 1% false positives each): it has no false negatives, costs about 1.25 bytes a
// key, and grows with the overlay without a rebuild. A branch that deleted a large tree holds
// a tombstone per key until its next checkpoint, so overlays of a million keys are ordinary.
// A false positive only costs the Pebble read every get made before. Past maxOverlayIndex
// keys the index turns itself off until the next invalidation.
type overlayIndex struct {
	mu      sync.Mutex
	state   overlayIndexState
	filters []*bloom
	keys    int
}

type overlayIndexState int

const (
	indexUnknown overlayIndexState = iota // rebuild at the next get
	indexBuilt
	indexOff // too many keys
)

const (
	firstFilterKeys = 4 << 10
	maxOverlayIndex = 16 << 20 // 20 MiB of filters
)

// mayHold reports whether the overlay of ws may hold key k: false only when the index is
// built and k is not in it. Callers hold ws.mu (read or write), so no commit runs meanwhile.
func (x *overlayIndex) mayHold(ws *Workspace, k []byte) (bool, error) {
	if len(k) == 0 || k[0] == KindPage {
		return true, nil
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.state == indexUnknown {
		if err := x.build(ws); err != nil {
			return true, err
		}
	}
	return x.state != indexBuilt || x.mayContain(k), nil
}

// mayContain reports whether some filter may hold k.
func (x *overlayIndex) mayContain(k []byte) bool {
	h1, h2 := bloomHash(k)
	for _, f := range x.filters {
		if f.has(h1, h2) {
			return true
		}
	}
	return false
}

// build scans the overlay's keys outside the page range.
func (x *overlayIndex) build(ws *Workspace) error {
	x.state, x.filters, x.keys = indexBuilt, nil, 0
	pages := ws.overlayKey([]byte{KindPage})
	for _, r := range [][2][]byte{
		{ws.prefix, pages},
		{ws.overlayKey([]byte{KindPage + 1}), PrefixEnd(ws.prefix)},
	} {
		it, err := ws.rd.NewIter(&pebble.IterOptions{LowerBound: r[0], UpperBound: r[1]})
		if err != nil {
			x.state = indexUnknown
			return err
		}
		for it.First(); it.Valid() && x.state == indexBuilt; it.Next() {
			x.insert(it.Key()[len(ws.prefix):])
		}
		if err := it.Close(); err != nil {
			x.state = indexUnknown
			return err
		}
	}
	return nil
}

// insert adds k to the last filter, starting a filter twice as large when it is full.
func (x *overlayIndex) insert(k []byte) {
	if x.keys >= maxOverlayIndex {
		x.state, x.filters = indexOff, nil
		return
	}
	n := len(x.filters)
	if n == 0 || x.filters[n-1].full() {
		size := firstFilterKeys
		if n > 0 {
			size = 2 * x.filters[n-1].capacity
		}
		x.filters = append(x.filters, newBloom(size))
	}
	x.filters[len(x.filters)-1].add(bloomHash(k))
	x.keys++
}

// add records a key a transaction is about to commit to the overlay.
func (x *overlayIndex) add(k string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.state == indexBuilt { // unknown: the rebuild will see it; off: nothing to keep
		x.insert([]byte(k))
	}
}

// invalidate makes the next get rebuild the index (the overlay changed behind it).
func (x *overlayIndex) invalidate() {
	x.mu.Lock()
	x.state, x.filters, x.keys = indexUnknown, nil, 0
	x.mu.Unlock()
}

// bloom is a Bloom filter of capacity keys: 10 bits and 7 probes a key.
type bloom struct {
	bits     []uint64
	capacity int
	n        int
}

func newBloom(capacity int) *bloom {
	return &bloom{bits: make([]uint64, (capacity*10+63)/64), capacity: capacity}
}

func (b *bloom) full() bool { return b.n >= b.capacity }

const bloomProbes = 7

func (b *bloom) add(h1, h2 uint64) {
	m := uint64(len(b.bits) * 64)
	for i := range uint64(bloomProbes) {
		bit := (h1 + i*h2) % m
		b.bits[bit/64] |= 1 << (bit % 64)
	}
	b.n++
}

func (b *bloom) has(h1, h2 uint64) bool {
	m := uint64(len(b.bits) * 64)
	for i := range uint64(bloomProbes) {
		bit := (h1 + i*h2) % m
		if b.bits[bit/64]&(1<<(bit%64)) == 0 {
			return false
		}
	}
	return true
}

// bloomSeed is fixed for the process: filters never leave it.
var bloomSeed = maphash.MakeSeed()

// bloomHash returns the two hashes the probes combine (double hashing).
func bloomHash(k []byte) (uint64, uint64) {
	h := maphash.Bytes(bloomSeed, k)
	return h, h>>32 | h<<32 | 1
}
