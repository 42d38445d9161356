package store_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/agentfs/agentfs/store"
)

// TestPrefetch: a block read ahead is verified when read and handed to the next Get once;
// a corrupt block is not kept (the Get fails itself); fsck and gc (LocalOnly) always read
// the disk, so a copy read ahead cannot hide damage from them.
func TestPrefetch(t *testing.T) {
	s := openT(t, t.TempDir(), store.Options{})
	data := make([]byte, 64<<10)
	rand.NewChaCha8([32]byte{5}).Read(data)
	id, err := s.Put(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Prefetch(id) || !s.Prefetched(id) {
		t.Fatal("a stored block was not kept by Prefetch")
	}
	// The disk copy rots after the read-ahead.
	key := append([]byte{'b'}, id[:]...)
	v, c, err := s.DB().Get(key)
	if err != nil {
		t.Fatal(err)
	}
	rotten := bytes.Clone(v)
	c.Close()
	rotten[1+100] ^= 1
	if err := s.DB().Set(key, rotten, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(store.LocalOnly(ctx), id, nil); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("LocalOnly Get of a block rotten on disk = %v, want ErrCorrupt", err)
	}
	got, err := s.Get(ctx, id, nil)
	if err != nil || !bytes.Equal(got, data) || s.ReadAheadHits() != 1 {
		t.Fatalf("Get after Prefetch: %v, equal %v, hits %d", err, bytes.Equal(got, data), s.ReadAheadHits())
	}
	if s.Prefetched(id) {
		t.Fatal("a block read ahead is kept after its Get")
	}
	if _, err := s.Get(ctx, id, nil); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("second Get = %v, want ErrCorrupt from the disk", err)
	}
	if s.Prefetch(id) || s.Prefetched(id) {
		t.Fatal("a corrupt block was kept by Prefetch")
	}
	if s.Prefetch(store.Sum([]byte("absent"))) {
		t.Fatal("Prefetch of an absent block reported success")
	}
}
