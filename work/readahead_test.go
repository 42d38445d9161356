package work

import (
	"bytes"
	"context"
	"errors"
	"log"
	"math/rand/v2"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/agentfs/agentfs/branch/tree"
	"github.com/agentfs/agentfs/store"
)

// foldedFile makes a file of blocks random 64 KiB blocks, folds it into stored blocks and
// returns a workspace over the result (empty overlay, empty key cache: what a daemon
// sees after a restart), the file's inode and content. The store logs into logBuf.
func foldedFile(t *testing.T, blocks int, seed uint64, logBuf *bytes.Buffer) (*Workspace, uint64, []byte) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(t.TempDir(), store.Options{Logger: log.New(logBuf, "", 0)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var ino atomic.Uint64
	ino.Store(RootIno)
	env := &Env{
		Store: st, Tree: tree.New(st, 1024), Now: time.Now, Log: log.New(logBuf, "", 0),
		AllocIno: func() (uint64, error) { return ino.Add(1), nil },
		Op:       func() func() { return func() {} },
	}
	root := &Inode{Ino: RootIno, Mode: 0o40755, Nlink: 2, Parent: RootIno}
	rootID, err := env.Tree.Apply(ctx, store.ID{}, []tree.Mutation{{Key: InodeKey(RootIno), Value: EncodeInode(root)}})
	if err != nil {
		t.Fatal(err)
	}
	ws := New(env, "main", 1, rootID, store.ID{})
	n, err := ws.Create(ctx, RootIno, "f", Attr{Mode: 0o644})
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, blocks*BlockSize)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}).Read(data)
	if _, err := ws.Write(ctx, n.Ino, 0, data); err != nil {
		t.Fatal(err)
	}
	ws.mu.Lock()
	folded, _, err := ws.fold(ctx)
	ws.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	return New(env, "main", 2, folded, store.ID{}), n.Ino, data
}

func readAheadSeed(t *testing.T) uint64 {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("AGENTFS_READAHEAD_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("AGENTFS_READAHEAD_SEED: %v", err)
		}
		seed = v
	}
	t.Logf("seed %d (replay: AGENTFS_READAHEAD_SEED=%d)", seed, seed)
	return seed
}

// TestReadAheadOutOfOrder reads a stored file front to back through one ReadAhead in
// 128 KiB READs that arrive out of order within windows of four, as the kernel's
// asynchronous READs do. Every byte must be right, most blocks must come from the
// read-ahead, and a block rewritten after it was read ahead must read as rewritten.
func TestReadAheadOutOfOrder(t *testing.T) {
	ctx := context.Background()
	seed := readAheadSeed(t)
	var logBuf bytes.Buffer
	const blocks = 96
	ws, ino, data := foldedFile(t, blocks, seed, &logBuf)
	st := ws.env.Store
	rng := rand.New(rand.NewPCG(seed, 1))
	const chunk = 128 << 10
	chunks := len(data) / chunk
	order := make([]int, 0, chunks)
	for w := 0; w < chunks; w += 4 {
		win := []int{}
		for c := w; c < min(w+4, chunks); c++ {
			win = append(win, c)
		}
		rng.Shuffle(len(win), func(i, j int) { win[i], win[j] = win[j], win[i] })
		order = append(order, win...)
	}
	var ra ReadAhead
	dest := make([]byte, chunk)
	rewritten := false
	for i, c := range order {
		off := int64(c * chunk)
		// Halfway, rewrite a block the read-ahead is likely to hold already.
		if i == len(order)/2 && !rewritten {
			target := int64(c*chunk) + 2*chunk // beyond this read, within the window
			if target < int64(len(data)) {
				patch := bytes.Repeat([]byte{0xA5}, BlockSize)
				if _, err := ws.Write(ctx, ino, target, patch); err != nil {
					t.Fatal(err)
				}
				copy(data[target:], patch)
				rewritten = true
			}
		}
		got, err := ws.ReadAt(ctx, &ra, ino, off, dest)
		if err != nil {
			t.Fatalf("read %d at %d: %v", i, off, err)
		}
		if got != chunk || !bytes.Equal(dest, data[off:off+chunk]) {
			t.Fatalf("read %d at %d: %d bytes, content differs from what was written", i, off, got)
		}
		st.WaitBackground()
	}
	if !rewritten {
		t.Fatal("the test did not rewrite a block")
	}
	hits := st.ReadAheadHits()
	t.Logf("%d of %d blocks came from the read-ahead", hits, blocks)
	if hits < blocks/2 {
		t.Fatalf("only %d of %d blocks came from the read-ahead", hits, blocks)
	}
}

// TestReadAheadCorruptBlock: a corrupt block inside the read-ahead window fails the read
// that needs it, and only that read; the damage is logged once (by that read).
func TestReadAheadCorruptBlock(t *testing.T) {
	ctx := context.Background()
	var logBuf bytes.Buffer
	const blocks, bad = 32, 13
	ws, ino, data := foldedFile(t, blocks, 7, &logBuf)
	st := ws.env.Store
	id := store.Sum(data[bad*BlockSize : (bad+1)*BlockSize])
	key := append([]byte{'b'}, id[:]...)
	v, c, err := st.DB().Get(key)
	if err != nil {
		t.Fatal(err)
	}
	rotten := bytes.Clone(v)
	c.Close()
	rotten[1+100] ^= 1
	if err := st.DB().Set(key, rotten, nil); err != nil {
		t.Fatal(err)
	}
	var ra ReadAhead
	const chunk = 2 * BlockSize
	dest := make([]byte, chunk)
	failed := 0
	for off := 0; off < len(data); off += chunk {
		_, err := ws.ReadAt(ctx, &ra, ino, int64(off), dest)
		st.WaitBackground()
		needsBad := off <= bad*BlockSize && bad*BlockSize < off+chunk
		switch {
		case needsBad:
			if !errors.Is(err, syscall.EIO) || !errors.Is(err, store.ErrCorrupt) {
				t.Fatalf("read at %d, which holds the corrupt block: %v, want EIO", off, err)
			}
			failed++
		case err != nil:
			t.Fatalf("read at %d: %v (only the read at %d should fail)", off, err, bad*BlockSize/chunk*chunk)
		case !bytes.Equal(dest, data[off:off+chunk]):
			t.Fatalf("read at %d: wrong content", off)
		}
	}
	if failed != 1 {
		t.Fatalf("%d reads failed, want 1", failed)
	}
	if n := bytes.Count(logBuf.Bytes(), []byte(id.String()+" corrupt")); n != 1 {
		t.Fatalf("the corrupt block is logged %d times, want once:\n%s", n, logBuf.String())
	}
	if st.ReadAheadHits() == 0 {
		t.Fatal("nothing came from the read-ahead: the window never covered the corrupt block")
	}
}

// TestReadAheadRandomReader: reads that do not follow each other read nothing ahead.
func TestReadAheadRandomReader(t *testing.T) {
	ctx := context.Background()
	var logBuf bytes.Buffer
	const blocks = 160
	ws, ino, data := foldedFile(t, blocks, 3, &logBuf)
	st := ws.env.Store
	var ra ReadAhead
	dest := make([]byte, PageSize)
	// Back and forth, never within aheadSlack (16 blocks) of the last read.
	for i, b := range []int{0, 80, 16, 112, 48, 144, 32, 96, 0} {
		off := int64(b * BlockSize)
		if _, err := ws.ReadAt(ctx, &ra, ino, off, dest); err != nil {
			t.Fatal(err)
		}
		st.WaitBackground()
		if !bytes.Equal(dest, data[off:off+PageSize]) {
			t.Fatalf("read %d: wrong content", i)
		}
	}
	if h := st.ReadAheadHits(); h != 0 {
		t.Fatalf("%d reads came from a read-ahead for a random reader", h)
	}
	for b := 0; b < blocks; b++ {
		if st.Prefetched(store.Sum(data[b*BlockSize : (b+1)*BlockSize])) {
			t.Fatalf("block %d was read ahead for a random reader", b)
		}
	}
}
