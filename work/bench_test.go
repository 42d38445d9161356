package work

import (
	"context"
	"log"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentfs/agentfs/branch/tree"
	"github.com/agentfs/agentfs/store"
)

// newTestWorkspace returns a workspace over an empty tree in a fresh repository, without the
// version model: overlay 1, no quota.
func newTestWorkspace(tb testing.TB) *Workspace {
	tb.Helper()
	st, err := store.Open(tb.TempDir(), store.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	var ino atomic.Uint64
	ino.Store(RootIno)
	env := &Env{
		Store: st, Tree: tree.New(st, 1024), Now: time.Now, Log: log.Default(),
		AllocIno: func() (uint64, error) { return ino.Add(1), nil },
		Op:       func() func() { return func() {} },
	}
	root := &Inode{Ino: RootIno, Mode: 0o40755, Nlink: 2, Parent: RootIno}
	rootID, err := env.Tree.Apply(context.Background(), store.ID{}, []tree.Mutation{{Key: InodeKey(RootIno), Value: EncodeInode(root)}})
	if err != nil {
		tb.Fatal(err)
	}
	return New(env, "main", 1, rootID, store.ID{})
}

// BenchmarkRandomWrite4K: the working layer's cost of one 4 KiB write at a random page of a
// 64 MiB file (no FUSE): one Pebble batch committed to the write-ahead log.
func BenchmarkRandomWrite4K(b *testing.B) {
	ctx := context.Background()
	ws := newTestWorkspace(b)
	n, err := ws.Create(ctx, RootIno, "f", Attr{Mode: 0o644})
	if err != nil {
		b.Fatal(err)
	}
	const pages = 64 << 20 / PageSize
	size := uint64(pages * PageSize)
	if _, err := ws.SetAttr(ctx, n.Ino, SetAttr{Size: &size}); err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, PageSize)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	b.SetBytes(PageSize)
	b.ReportAllocs()
	for b.Loop() {
		buf[0]++
		if _, err := ws.Write(ctx, n.Ino, int64(r.IntN(pages))*PageSize, buf); err != nil {
			b.Fatal(err)
		}
	}
}
