package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/cockroachdb/pebble/v2"

	"github.com/agentfs/agentfs/backends"
	"github.com/agentfs/agentfs/branch/tree"
	"github.com/agentfs/agentfs/store"
)

// PushResult says what a push did.
type PushResult struct {
	Remote   string `json:"remote"`
	Branch   string `json:"branch"`
	Commit   string `json:"commit"`
	Previous string `json:"previous,omitempty"` // the remote branch before, "" if new
	UpToDate bool   `json:"up_to_date"`
	Objects  int64  `json:"objects"` // objects sent
	Bytes    int64  `json:"bytes"`   // bytes sent (packs and indexes)
	Packs    int    `json:"packs"`
}

// historyLimit bounds how many commits a push or pull reads to decide ancestry.
const historyLimit = 1 << 20

func rejected(remote, br string) error {
	return fmt.Errorf("%w: remote branch %s has changed since your last pull; run agentfs pull %s %s first", ErrRejected, br, remote, br)
}

// Push sends branch br to remote: it checkpoints the branch if it has uncommitted changes,
// uploads the objects the remote lacks in packs, then moves the remote ref by
// compare-and-swap. It fails with ErrRejected, changing no ref, if the remote branch moved
// since this repository last pulled or pushed it.
func (m *Manager) Push(ctx context.Context, remote, br string) (PushResult, error) {
	res := PushResult{Remote: remote, Branch: br}
	b, err := m.backend(ctx, remote)
	if err != nil {
		return res, err
	}
	ws, err := m.e.Workspace(ctx, br)
	if err != nil {
		return res, err
	}
	lock := m.remoteLock(remote)
	lock.Lock()
	defer lock.Unlock()
	t, done := m.begin("push", remote, br)
	defer done()

	if changed, err := ws.Changed(); err != nil {
		return res, err
	} else if changed {
		if _, err := m.e.Checkpoint(ctx, br, "", "push to "+remote); err != nil {
			return res, err
		}
	}
	head := ws.Base()
	res.Commit = head.String()

	var enc *encParams
	if on, err := m.encryptNew(remote); err != nil {
		return res, err
	} else if on {
		enc = newEncParams()
	}
	if err := ensureFormat(ctx, b, enc); err != nil {
		return res, fmt.Errorf("remote %s: %w", remote, err)
	}
	ring, err := m.ring(ctx, remote)
	if err != nil {
		return res, err
	}
	// Announce the push before deciding what the remote already has (lock.go). The lease is
	// renewed while the push runs and checked before the ref moves.
	ls, err := m.pushLease(ctx, remote, b)
	if err != nil {
		return res, err
	}
	defer ls.release(ctx)
	t.set("index", 0, 0)
	if err := m.refresh(ctx, remote, b, t); err != nil {
		return res, err
	}
	// The remote ref now, and what we last saw of it.
	data, etag, err := getCapped(ctx, b, refKey(br), maxRefSize)
	var remoteHead store.ID
	switch {
	case errors.Is(err, backends.ErrNotExist):
		etag = ""
	case err != nil:
		return res, fmt.Errorf("remote %s: read ref %s: %w", remote, br, err)
	default:
		if remoteHead, err = decodeRef(ring, br, data); err != nil {
			return res, err
		}
		res.Previous = remoteHead.String()
	}
	if !remoteHead.IsZero() {
		if remoteHead == head {
			res.UpToDate = true
			if err := m.setTracking(remote, br, tracking{head, etag}); err != nil {
				return res, err
			}
			return res, m.clearPending(remote, br)
		}
		// Fast-forward only: the remote head must be in our history. If it is not, someone
		// else pushed (or we never pulled).
		ok, err := m.descendsFromRemote(ctx, remote, head, remoteHead)
		if err != nil {
			return res, err
		}
		if !ok {
			return res, rejected(remote, br)
		}
	}
	// Until the ref moves, a durable record says that this push is unfinished (fsck
	// --remote checks it; the next push of the branch replaces it).
	if err := m.setPending(remote, br, head); err != nil {
		return res, err
	}

	// Collect what the remote lacks and send it.
	t.set("walk", 0, 0)
	objs, err := m.missing(ctx, remote, head, t)
	if err != nil {
		return res, err
	}
	t.set("upload", 0, int64(len(objs)))
	if err := m.send(ctx, remote, b, objs, t, &res); err != nil {
		return res, err
	}

	// Check before the ref moves: every object reachable from the new head is listed by an
	// index in the bucket now (the cache refreshed, so packs another host collected count as
	// gone). What is missing (an interrupted push's leftovers, a cache gone stale) is sent.
	t.set("verify", 0, 0)
	for attempt := 0; ; attempt++ {
		if err := m.refresh(ctx, remote, b, t); err != nil {
			return res, err
		}
		lack, err := m.unconfirmed(ctx, remote, head, remoteHead)
		if err != nil {
			return res, err
		}
		if len(lack) == 0 {
			break
		}
		if attempt > 0 {
			return res, fmt.Errorf("remote %s: %d objects of %s are still missing after they were uploaded (first: %s %s); push again",
				remote, len(lack), br, kindName(lack[0].kind), lack[0].id)
		}
		m.o.Logger.Printf("remote %s: push %s: the remote lacked %d objects the index cache listed; sending them", remote, br, len(lack))
		if err := m.send(ctx, remote, b, lack, t, &res); err != nil {
			return res, err
		}
	}
	if err := m.st.Sync(); err != nil {
		return res, err
	}

	// Fence: the lease must still be ours, so no collection can have run since we looked.
	if err := ls.check(ctx); err != nil {
		return res, fmt.Errorf("%w; nothing was changed: push again", err)
	}
	// Move the ref. ifMatch "" creates it and fails if someone created it meanwhile.
	t.set("ref", 0, 1)
	rec, signed, err := m.encodeRef(ring, br, head)
	if err != nil {
		return res, err
	}
	if signed != nil {
		signed.Remote = remote
	}
	newTag, err := b.PutIf(ctx, refKey(br), rec, etag)
	if errors.Is(err, backends.ErrPrecondition) {
		// A retried PutIf whose first attempt landed (the answer was lost) fails its
		// condition against our own write: look before reporting a rejection.
		if data, tag, gerr := getCapped(ctx, b, refKey(br), maxRefSize); gerr == nil {
			if id, derr := decodeRef(ring, br, data); derr == nil && id == head {
				if err := m.setTracking(remote, br, tracking{head, tag}); err != nil {
					return res, err
				}
				if err := m.recordSigner(head, signed); err != nil {
					return res, err
				}
				return res, m.clearPending(remote, br)
			}
		}
		m.clearPending(remote, br) // the push is over: rejected, and said so
		return res, rejected(remote, br)
	}
	if err != nil {
		return res, fmt.Errorf("remote %s: update ref %s: %w (the objects are uploaded; pushing again finishes it)", remote, br, err)
	}
	if err := m.setTracking(remote, br, tracking{head, newTag}); err != nil {
		return res, err
	}
	if err := m.recordSigner(head, signed); err != nil {
		return res, err
	}
	return res, m.clearPending(remote, br)
}

// Pending is a push that started and has not moved its ref (yet): the process was killed, or
// the push failed.
type Pending struct {
	Remote string `json:"remote"`
	Branch string `json:"branch"`
	Commit string `json:"commit"`
}

func (m *Manager) setPending(remote, br string, head store.ID) error {
	return m.st.Durable(func() error { return m.db.Set(remoteKey(remote, 'p', []byte(br)), head[:], pebble.Sync) })
}

func (m *Manager) clearPending(remote, br string) error {
	return m.st.Durable(func() error { return m.db.Delete(remoteKey(remote, 'p', []byte(br)), pebble.Sync) })
}

// PendingPushes lists the unfinished pushes to remote.
func (m *Manager) PendingPushes(remote string) ([]Pending, error) {
	p := remoteKey(remote, 'p')
	it, err := m.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []Pending
	for it.First(); it.Valid(); it.Next() {
		if len(it.Value()) == 32 {
			out = append(out, Pending{Remote: remote, Branch: string(it.Key()[len(p):]), Commit: store.ID(it.Value()).String()})
		}
	}
	return out, it.Error()
}

// descendsFromRemote reports whether head has anc in its history. A commit the remote has
// and whose history we lack locally is read through the fetcher.
func (m *Manager) descendsFromRemote(ctx context.Context, remote string, head, anc store.ID) (bool, error) {
	if ok, err := m.st.Has(ctx, anc); err != nil {
		return false, err
	} else if !ok {
		if has, err := m.has(remote, anc); err != nil || !has {
			return false, err
		}
	}
	return m.e.DescendsFrom(ctx, head, anc, historyLimit)
}

type object struct {
	id   store.ID
	kind byte
}

// missing lists the objects reachable from head that the remote lacks: commits back to the
// first one the remote has, and for each its tree, skipping every subtree whose root node the
// remote has (trees are content-addressed: such a subtree is complete there). Tree nodes and
// commits come first (in walk order), then data blocks in tree order (a file's blocks in
// order); send reorders them for upload.
func (m *Manager) missing(ctx context.Context, remote string, head store.ID, t *tracker) ([]object, error) {
	seen := map[store.ID]bool{}
	var meta, data []object
	need := func(id store.ID) (bool, error) {
		if seen[id] {
			return false, nil
		}
		seen[id] = true
		has, err := m.has(remote, id)
		return !has, err
	}
	queue := []store.ID{head}
	for len(queue) > 0 {
		cid := queue[0]
		queue = queue[1:]
		if ok, err := need(cid); err != nil {
			return nil, err
		} else if !ok {
			continue
		}
		c, err := m.e.ReadCommit(ctx, cid)
		if errors.Is(err, store.ErrNotFound) && cid != head {
			continue // history cut off before this repository's first commit of it
		}
		if err != nil {
			return nil, err
		}
		meta = append(meta, object{cid, KindCommit})
		err = m.e.Tree().Walk(ctx, c.Root, func(id store.ID, level int, leaf func(func(k, v []byte) bool)) error {
			ok, err := need(id)
			if err != nil {
				return err
			}
			if !ok {
				return tree.SkipSubtree
			}
			meta = append(meta, object{id, KindMeta})
			t.add(1, 0)
			if leaf == nil {
				return nil
			}
			leaf(func(k, v []byte) bool {
				if len(k) == 17 && k[0] == 'b' && len(v) == 32 {
					if ok, e := need(store.ID(v)); e != nil {
						err = e
						return false
					} else if ok {
						data = append(data, object{store.ID(v), KindData})
					}
				}
				return true
			})
			return err
		})
		if err != nil {
			return nil, err
		}
		queue = append(queue, c.Parents...)
	}
	return append(meta, data...), nil
}

// send uploads objs in an order that leaves the bucket consistent wherever it stops: data
// blocks first (up to three packs in flight); then, once all of them are confirmed, tree
// nodes and commits one pack at a time, in reverse walk order, so that a node comes after
// the nodes and blocks it names and a commit after its tree and its parents. An object the
// bucket lists therefore never names one that it lacks, and a later push that finds a
// subtree's root in the bucket may skip the subtree.
func (m *Manager) send(ctx context.Context, remote string, b backends.Backend, objs []object, t *tracker, res *PushResult) error {
	var data, meta []object
	for _, o := range objs {
		if o.kind == KindData {
			data = append(data, o)
		} else {
			meta = append(meta, o)
		}
	}
	slices.Reverse(meta)
	if err := m.upload(ctx, remote, b, data, 3, t, res); err != nil {
		return err
	}
	return m.upload(ctx, remote, b, meta, 1, t, res)
}

// upload writes objs into packs of about PackSize bytes: each pack, then its index, then
// records it in the local index cache (only once both are confirmed). Up to inflight packs
// are uploaded at once.
func (m *Manager) upload(ctx context.Context, remote string, b backends.Backend, objs []object, inflight int, t *tracker, res *PushResult) error {
	ring, err := m.ring(ctx, remote)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		upErr   error
		slots   = make(chan struct{}, inflight)
		buf     = append([]byte(nil), ring.packMagic()...)
		entries []entry
	)
	fail := func(err error) {
		mu.Lock()
		if upErr == nil {
			upErr = err
			cancel()
		}
		mu.Unlock()
	}
	flush := func() {
		if len(entries) == 0 {
			return
		}
		pack, ents := buf, entries
		buf, entries = append(make([]byte, 0, m.o.PackSize+1<<20), ring.packMagic()...), nil
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			n, err := m.putPack(ctx, remote, ring, b, pack, ents)
			if err != nil {
				fail(err)
				return
			}
			mu.Lock()
			res.Packs++
			res.Objects += int64(len(ents))
			res.Bytes += n
			mu.Unlock()
			t.add(int64(len(ents)), n)
		}()
	}
	var raw []byte
	for _, o := range objs {
		if ctx.Err() != nil {
			break
		}
		var err error
		raw, err = m.st.Get(ctx, o.id, raw[:0])
		if err != nil {
			fail(fmt.Errorf("push: read %s: %w", o.id, err))
			break
		}
		off := len(buf)
		buf = ring.encodeObject(buf, o.id, raw)
		entries = append(entries, entry{ID: o.id, Kind: o.kind, Offset: uint64(off), Length: uint32(len(buf) - off)})
		if len(buf) >= m.o.PackSize {
			flush()
		}
	}
	if ctx.Err() == nil {
		flush()
	}
	wg.Wait()
	if upErr != nil {
		return upErr
	}
	return ctx.Err()
}

// putPack uploads one pack and its index and records them locally; it returns the bytes sent.
func (m *Manager) putPack(ctx context.Context, remote string, ring *keyRing, b backends.Backend, pack []byte, ents []entry) (int64, error) {
	id := ring.packName(pack)
	if err := b.Put(ctx, packKey(id), bytes.NewReader(pack), int64(len(pack))); err != nil {
		return 0, fmt.Errorf("remote %s: upload pack: %w", remote, err)
	}
	idx := ring.sealWhole("index", id.String(), encodeIndex(id, ents))
	if err := b.Put(ctx, indexKey(id), bytes.NewReader(idx), int64(len(idx))); err != nil {
		return 0, fmt.Errorf("remote %s: upload index: %w", remote, err)
	}
	if err := m.recordPack(remote, id, int64(len(pack)), ents); err != nil {
		return 0, err
	}
	return int64(len(pack) + len(idx)), nil
}
