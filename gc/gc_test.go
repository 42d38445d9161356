package gc_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentfs/agentfs/branch"
	"github.com/agentfs/agentfs/gc"
	"github.com/agentfs/agentfs/store"
)

func openEngine(t testing.TB) *branch.Engine {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e, err := branch.Open(st, branch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// files is a model of a branch: file name -> content (all files in the root directory).
type files map[string][]byte

func (f files) clone() files {
	out := files{}
	for k, v := range f {
		out[k] = v
	}
	return out
}

func writeFile(ctx context.Context, e *branch.Engine, br, name string, data []byte) error {
	ws, err := e.Workspace(ctx, br)
	if err != nil {
		return err
	}
	n, err := ws.Lookup(ctx, branch.RootIno, name)
	if errors.Is(err, syscall.ENOENT) {
		n, err = ws.Create(ctx, branch.RootIno, name, branch.Attr{Mode: 0o644})
	}
	if err != nil {
		return err
	}
	zero := uint64(0)
	if _, err := ws.SetAttr(ctx, n.Ino, branch.SetAttr{Size: &zero}); err != nil {
		return err
	}
	if _, err := ws.Write(ctx, n.Ino, 0, data); err != nil {
		return err
	}
	return ws.Release(ctx, n.Ino)
}

// readAll reads every file of a ref (branch or checkpoint) into a model.
func readAll(ctx context.Context, e *branch.Engine, ref string) (files, error) {
	ws, _, err := e.Open(ctx, ref)
	if err != nil {
		return nil, err
	}
	out := files{}
	var names []branch.DirEntry
	if err := ws.ReadDir(ctx, branch.RootIno, "", func(d branch.DirEntry) error {
		names = append(names, d)
		return nil
	}); err != nil {
		return nil, err
	}
	for _, d := range names {
		n, err := ws.GetAttr(ctx, d.Ino)
		if err != nil {
			return nil, err
		}
		buf := make([]byte, n.Size)
		if k, err := ws.Read(ctx, d.Ino, 0, buf); err != nil {
			return nil, fmt.Errorf("read %s:%s: %w", ref, d.Name, err)
		} else if k != len(buf) {
			return nil, fmt.Errorf("read %s:%s: short read %d of %d", ref, d.Name, k, len(buf))
		}
		out[d.Name] = buf
	}
	return out, nil
}

func sameFiles(got, want files) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d files, want %d", len(got), len(want))
	}
	for k, v := range want {
		if !bytes.Equal(got[k], v) {
			return fmt.Errorf("file %s: %d bytes differ from the %d written", k, len(got[k]), len(v))
		}
	}
	return nil
}

func blockBytes(t testing.TB, e *branch.Engine) (n int, size int64) {
	t.Helper()
	if err := e.Store().Blocks(context.Background(), func(id store.ID, s int64) error {
		n++
		size += s
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n, size
}

func randData(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func mustClean(t testing.TB, e *branch.Engine) {
	t.Helper()
	rep, err := gc.Check(context.Background(), e, gc.CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Problems {
		t.Errorf("fsck: %s", p)
	}
	if t.Failed() {
		t.FailNow()
	}
}

// Many goroutines fork, write, checkpoint, roll back, delete branches and revive old
// checkpoints by id while GC runs in a loop. Every read during and after the run returns
// what was written; fsck is clean; after deleting all branches but one, gc leaves exactly
// the blocks that branch holds.
func TestGCStress(t *testing.T) {
	ctx := context.Background()
	e := openEngine(t)
	if _, err := e.CreateBranch(ctx, "main", ""); err != nil {
		t.Fatal(err)
	}
	r0 := rand.New(rand.NewPCG(1, 2))
	mainModel := files{}
	for i := range 20 {
		name := fmt.Sprintf("base%02d", i)
		mainModel[name] = randData(r0, 1000+r0.IntN(150<<10))
		if err := writeFile(ctx, e, "main", name, mainModel[name]); err != nil {
			t.Fatal(err)
		}
	}
	baseID, err := e.Checkpoint(ctx, "main", "base", "")
	if err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex // guards checkpoints
	checkpoints := map[store.ID]files{baseID: mainModel.clone()}
	pick := func(r *rand.Rand) (store.ID, files) {
		mu.Lock()
		defer mu.Unlock()
		i := r.IntN(len(checkpoints))
		for id, m := range checkpoints {
			if i == 0 {
				return id, m.clone()
			}
			i--
		}
		panic("unreachable")
	}

	dur := 6 * time.Second
	if testing.Short() {
		dur = 2 * time.Second
	}
	deadline := time.Now().Add(dur)
	stop := make(chan struct{})
	gcErr := make(chan error, 1)
	var runs, deleted int64
	go func() {
		defer close(gcErr)
		for {
			select {
			case <-stop:
				return
			default:
			}
			s, err := gc.Run(ctx, e, gc.Options{BatchSize: 64})
			if err != nil {
				gcErr <- err
				return
			}
			runs++
			deleted += s.Deleted
		}
	}()

	const workers = 6
	models := make([]map[string]files, workers) // per worker: live branch -> model
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for wi := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(wi), 99))
			live := map[string]files{}
			models[wi] = live
			seq := 0
			fail := func(format string, args ...any) {
				errs <- fmt.Errorf("worker %d: "+format, append([]any{wi}, args...)...)
			}
			for time.Now().Before(deadline) {
				var names []string
				for n := range live {
					names = append(names, n)
				}
				op := r.IntN(10)
				if len(names) == 0 {
					op = 0
				}
				switch {
				case op <= 1: // fork from a random checkpoint (maybe of a deleted branch)
					seq++
					name := fmt.Sprintf("w%d-%d", wi, seq)
					id, m := pick(r)
					if _, err := e.CreateBranch(ctx, name, id.String()); err != nil {
						if errors.Is(err, store.ErrNotFound) || errors.Is(err, branch.ErrNotFound) || strings.Contains(err.Error(), "garbage collected") {
							continue // collected before we revived it: a clean refusal
						}
						fail("fork %s from %s: %v", name, id, err)
						return
					}
					live[name] = m
				case op <= 5: // write
					br := names[r.IntN(len(names))]
					fname := fmt.Sprintf("f%d", r.IntN(6))
					var data []byte
					if r.IntN(4) == 0 {
						data = bytes.Repeat([]byte{byte(r.IntN(3))}, 70000) // dedups across branches
					} else {
						data = randData(r, 1+r.IntN(140<<10))
					}
					if err := writeFile(ctx, e, br, fname, data); err != nil {
						fail("write %s:%s: %v", br, fname, err)
						return
					}
					live[br][fname] = data
				case op == 6: // checkpoint
					br := names[r.IntN(len(names))]
					id, err := e.Checkpoint(ctx, br, "", "")
					if err != nil {
						fail("checkpoint %s: %v", br, err)
						return
					}
					mu.Lock()
					checkpoints[id] = live[br].clone()
					mu.Unlock()
				case op == 7: // roll back to a random checkpoint
					br := names[r.IntN(len(names))]
					id, m := pick(r)
					if err := e.Rollback(ctx, br, id.String()); err != nil {
						if errors.Is(err, store.ErrNotFound) || errors.Is(err, branch.ErrNotFound) || strings.Contains(err.Error(), "garbage collected") {
							continue
						}
						fail("rollback %s to %s: %v", br, id, err)
						return
					}
					live[br] = m
				case op == 8: // read back
					br := names[r.IntN(len(names))]
					got, err := readAll(ctx, e, br)
					if err == nil {
						err = sameFiles(got, live[br])
					}
					if err != nil {
						fail("read back %s during gc: %v", br, err)
						return
					}
				default: // delete
					br := names[r.IntN(len(names))]
					if err := e.DeleteBranch(ctx, br); err != nil {
						fail("delete %s: %v", br, err)
						return
					}
					delete(live, br)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	if err := <-gcErr; err != nil {
		t.Fatalf("gc: %v", err)
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d gc runs deleted %d blocks", runs, deleted)
	if runs < 2 {
		t.Fatalf("only %d gc runs overlapped the workload", runs)
	}

	// One more collection, then every live branch reads back exactly its model.
	if _, err := gc.Run(ctx, e, gc.Options{}); err != nil {
		t.Fatal(err)
	}
	nlive := 0
	for _, live := range models {
		for br, m := range live {
			nlive++
			got, err := readAll(ctx, e, br)
			if err == nil {
				err = sameFiles(got, m)
			}
			if err != nil {
				t.Errorf("branch %s after gc: %v", br, err)
			}
		}
	}
	if got, err := readAll(ctx, e, "main"); err != nil || sameFiles(got, mainModel) != nil {
		t.Errorf("main after gc: %v", err)
	}
	mustClean(t, e)
	t.Logf("%d live branches verified", nlive)

	// Delete every branch but main: the store shrinks to exactly what main holds.
	_, before := blockBytes(t, e)
	for _, live := range models {
		for br := range live {
			if err := e.DeleteBranch(ctx, br); err != nil {
				t.Fatal(err)
			}
		}
	}
	s, err := gc.Run(ctx, e, gc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n, after := blockBytes(t, e)
	space, err := gc.Space(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	var logical int64
	for _, v := range mainModel {
		logical += int64(len(v))
	}
	t.Logf("blocks before %d bytes; after deleting all but main: %d blocks, %d bytes (main holds %+v; its files are %d bytes); disk %d -> %d",
		before, n, after, space["main"], logical, s.DiskBefore, s.DiskAfter)
	if space["main"].Shared != 0 || space["main"].Exclusive != after {
		t.Errorf("main holds %+v, the store %d bytes: gc left garbage", space["main"], after)
	}
	if after > logical*11/10+64<<10 {
		t.Errorf("store holds %d bytes, main's files are %d bytes", after, logical)
	}
	if got, err := readAll(ctx, e, "main"); err != nil || sameFiles(got, mainModel) != nil {
		t.Errorf("main after final gc: %v", err)
	}
	mustClean(t, e)
}

// A checkpoint that nothing references (its branch is deleted) but that is revived by id
// while a collection runs, between mark and sweep, keeps its whole tree.
func TestGCReviveDuringCollection(t *testing.T) {
	ctx := context.Background()
	e := openEngine(t)
	if _, err := e.CreateBranch(ctx, "main", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateBranch(ctx, "tmp", "main"); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	model := files{}
	for i := range 30 {
		name := fmt.Sprintf("f%d", i)
		model[name] = randData(r, 100<<10)
		if err := writeFile(ctx, e, "tmp", name, model[name]); err != nil {
			t.Fatal(err)
		}
	}
	old, err := e.Checkpoint(ctx, "tmp", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.DeleteBranch(ctx, "tmp"); err != nil {
		t.Fatal(err)
	}
	revived := false
	var reviveErr error
	var unpin func()
	stats, err := gc.Run(ctx, e, gc.Options{Progress: func(p gc.Progress) {
		if p.Phase == gc.PhaseMark && !revived && p.Done > 0 {
			revived = true // marking is done: old is garbage in this collection's eyes
			if _, reviveErr = e.CreateBranch(ctx, "back", old.String()[:16]); reviveErr != nil {
				return
			}
			_, unpin, reviveErr = e.PinView(ctx, old, "test mount")
		}
	}})
	if err != nil || reviveErr != nil || !revived {
		t.Fatalf("gc: %v; revive: %v (%v)", err, reviveErr, revived)
	}
	unpin()
	if stats.Spared == 0 {
		t.Errorf("nothing was spared: %+v", stats)
	}
	got, err := readAll(ctx, e, "back")
	if err == nil {
		err = sameFiles(got, model)
	}
	if err != nil {
		t.Fatalf("revived branch: %v", err)
	}
	mustClean(t, e)
}

// A pinned (mounted) checkpoint survives collection; after unpin the next gc frees it.
func TestGCPin(t *testing.T) {
	ctx := context.Background()
	e := openEngine(t)
	e.CreateBranch(ctx, "main", "")
	e.CreateBranch(ctx, "tmp", "main")
	data := randData(rand.New(rand.NewPCG(5, 6)), 300<<10)
	if err := writeFile(ctx, e, "tmp", "big", data); err != nil {
		t.Fatal(err)
	}
	id, err := e.Checkpoint(ctx, "tmp", "", "")
	if err != nil {
		t.Fatal(err)
	}
	e.DeleteBranch(ctx, "tmp")
	ws, unpin, err := e.PinView(ctx, id, "mounted at /x")
	if err != nil {
		t.Fatal(err)
	}
	if s, err := gc.Run(ctx, e, gc.Options{}); err != nil || s.Deleted != 0 {
		t.Fatalf("gc with a pin: %+v %v", s, err)
	}
	n, err := ws.Lookup(ctx, branch.RootIno, "big")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(data))
	if _, err := ws.Read(ctx, n.Ino, 0, buf); err != nil || !bytes.Equal(buf, data) {
		t.Fatalf("pinned view after gc: %v", err)
	}
	unpin()
	s, err := gc.Run(ctx, e, gc.Options{})
	if err != nil || s.DeletedBytes < int64(len(data)) {
		t.Fatalf("gc after unpin: %+v %v", s, err)
	}
	if _, err := e.CreateBranch(ctx, "again", id.String()); err == nil {
		t.Fatal("forked from a collected checkpoint")
	}
	mustClean(t, e)
}

// Pruned checkpoints stay in the log; gc frees their files; they cannot be revived.
func TestPrune(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e, _ := branch.Open(st, branch.Options{Now: func() time.Time { return now }})
	e.CreateBranch(ctx, "main", "")
	r := rand.New(rand.NewPCG(7, 8))
	var ids []store.ID
	for i := range 6 {
		if err := writeFile(ctx, e, "main", "f", randData(r, 200<<10)); err != nil {
			t.Fatal(err)
		}
		name := ""
		if i == 1 {
			name = "keepme"
		}
		id, err := e.Checkpoint(ctx, "main", name, "")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		now = now.Add(time.Hour)
	}
	// Keep the 2 newest and everything within 200 minutes (ids[3..5]); ids[1] is named.
	// Pruned: ids[0], ids[2] and the branch's creation.
	pruned, err := e.PruneCheckpoints(ctx, "main", 2, 200*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	got := map[store.ID]bool{}
	for _, id := range pruned {
		got[id] = true
	}
	if len(pruned) != 3 || !got[ids[0]] || !got[ids[2]] {
		t.Fatalf("pruned %v, want ids 0 and 2 and the creation (%v)", pruned, ids)
	}
	if again, err := e.PruneCheckpoints(ctx, "main", 2, 200*time.Minute); err != nil || len(again) != 0 {
		t.Fatalf("pruning again: %v %v", again, err)
	}
	s, err := gc.Run(ctx, e, gc.Options{})
	if err != nil || s.DeletedBytes < 2*200<<10 {
		t.Fatalf("gc after prune: %+v %v", s, err)
	}
	log, err := e.Log(ctx, "main")
	if err != nil || len(log) != 7 { // 6 checkpoints + the branch's creation
		t.Fatalf("log after prune: %d entries, %v", len(log), err)
	}
	if ok, _ := e.IsPruned(ids[0]); !ok {
		t.Fatal("IsPruned")
	}
	if _, err := e.CreateBranch(ctx, "x", ids[0].String()); !errors.Is(err, branch.ErrPruned) {
		t.Fatalf("fork from a pruned checkpoint: %v", err)
	}
	if _, err := readAll(ctx, e, "main@keepme"); err != nil {
		t.Fatalf("named checkpoint after prune+gc: %v", err)
	}
	if _, err := readAll(ctx, e, ids[3].String()); err != nil {
		t.Fatalf("kept checkpoint after prune+gc: %v", err)
	}
	mustClean(t, e)
}

// A flipped bit in a stored data block: reads give EIO (never wrong bytes), fsck names the
// branch and the file.
func TestCorruptBlock(t *testing.T) {
	ctx := context.Background()
	e := openEngine(t)
	e.CreateBranch(ctx, "main", "")
	data := randData(rand.New(rand.NewPCG(9, 10)), 3*branch.BlockSize)
	if err := writeFile(ctx, e, "main", "victim", data); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(ctx, e, "main", "fine", []byte("all good")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Checkpoint(ctx, "main", "v1", ""); err != nil {
		t.Fatal(err)
	}
	mustClean(t, e)
	// Flip a byte of the second block of victim.
	target := store.Sum(data[branch.BlockSize : 2*branch.BlockSize])
	db := e.Store().DB()
	key := append([]byte{'b'}, target[:]...)
	v, c, err := db.Get(key)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(v)
	c.Close()
	bad[1+100] ^= 0x01 // after the codec byte
	if err := db.Set(key, bad, nil); err != nil {
		t.Fatal(err)
	}
	got, err := readAll(ctx, e, "main")
	if err == nil || !errors.Is(err, syscall.EIO) || !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("read of a corrupt block: %v (got %d files)", err, len(got))
	}
	ws, _ := e.Workspace(ctx, "main")
	n, _ := ws.Lookup(ctx, branch.RootIno, "victim")
	buf := make([]byte, len(data))
	k, err := ws.Read(ctx, n.Ino, 0, buf)
	if !errors.Is(err, syscall.EIO) || k > branch.BlockSize || !bytes.Equal(buf[:k], data[:k]) {
		t.Fatalf("read: %d bytes, %v; want the first block at most, then EIO", k, err)
	}
	rep, err := gc.Check(ctx, e, gc.CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 1 {
		t.Fatalf("fsck found %d problems, want 1: %v", len(rep.Problems), rep.Problems)
	}
	p := rep.Problems[0]
	if p.Ref != "branch main" || !strings.HasPrefix(p.Path, "/victim") || p.ID != target.String() || !strings.Contains(p.Error, "corrupt") {
		t.Fatalf("fsck problem: %+v", p)
	}
	t.Logf("fsck: %s", p)
	// GC refuses nothing here (a corrupt block is present), and does not delete it.
	if _, err := gc.Run(ctx, e, gc.Options{}); err != nil {
		t.Fatal(err)
	}
	if ok, _ := e.Store().Has(ctx, target); !ok {
		t.Fatal("gc deleted a referenced (corrupt) block")
	}
}

// Space: a fork shares the base; what it wrote alone is exclusive.
func TestSpace(t *testing.T) {
	ctx := context.Background()
	e := openEngine(t)
	e.CreateBranch(ctx, "main", "")
	r := rand.New(rand.NewPCG(11, 12))
	writeFile(ctx, e, "main", "shared", randData(r, 256<<10))
	e.Checkpoint(ctx, "main", "", "")
	e.CreateBranch(ctx, "fork", "main")
	writeFile(ctx, e, "fork", "mine", randData(r, 512<<10))
	sp, err := gc.Space(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	f, m := sp["fork"], sp["main"]
	t.Logf("main %+v fork %+v", m, f)
	if f.Exclusive < 512<<10 || f.Exclusive > 600<<10 || f.Shared < 256<<10 || m.Shared != f.Shared || m.Exclusive > 16<<10 {
		t.Fatalf("space: main %+v fork %+v", m, f)
	}
	// Uncommitted, the fork's data are working pages (deleting the fork drops them); a
	// checkpoint folds them into blocks, which gc frees once the fork is deleted.
	if _, err := e.Checkpoint(ctx, "fork", "", ""); err != nil {
		t.Fatal(err)
	}
	if sp, err = gc.Space(ctx, e); err != nil {
		t.Fatal(err)
	}
	f = sp["fork"]
	t.Logf("after checkpoint: fork %+v", f)
	if f.Exclusive < 512<<10 || f.Exclusive > 600<<10 || f.Shared != m.Shared {
		t.Fatalf("space after checkpoint: fork %+v", f)
	}
	_, before := blockBytes(t, e)
	e.DeleteBranch(ctx, "fork")
	s, err := gc.Run(ctx, e, gc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, after := blockBytes(t, e)
	if before-after != f.Exclusive || s.DeletedBytes != f.Exclusive {
		t.Fatalf("deleting fork freed %d (gc says %d), space said %d", before-after, s.DeletedBytes, f.Exclusive)
	}
}

func TestMain(m *testing.M) { os.Exit(m.Run()) }
