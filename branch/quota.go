package branch

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/agentfs/agentfs/store"
)

// Per-branch quotas.
//
//	'Q' branch name -> 8-byte byte limit, 8-byte inode limit (0 = none)
//
// A quota limits what a branch holds beyond what it shares with other versions: the
// "exclusive" figures of `branch list`. Counting them exactly needs a walk over the
// repository (package gc, installed as Engine.Usage), far too slow for every write. So the
// engine counts exactly at the first write after the quota is set, then adds what each
// write or create may add (conservatively: every byte written, every inode made), and
// counts exactly again only when that estimate reaches the limit. A write that the exact
// count does not admit fails with EDQUOT before it changes anything.
//
// A branch without a quota pays one atomic load per write: no lock, no counting.
const pfxQuota = 'Q'

func quotaKey(name string) []byte { return append([]byte{pfxQuota}, name...) }

// Quota is a branch's limits; 0 means no limit.
type Quota struct {
	Bytes  int64 `json:"bytes,omitempty"`
	Inodes int64 `json:"inodes,omitempty"`
}

// UsageFunc counts a branch's exclusive usage exactly.
type UsageFunc func(ctx context.Context, e *Engine, branch string) (Usage, error)

// quotaState is the live accounting of one branch with a quota.
type quotaState struct {
	limit Quota

	mu        sync.Mutex
	counted   bool      // base holds an exact count
	base      Usage     // at the last exact count
	pending   Usage     // added since (an upper bound)
	inflight  Usage     // admitted, not finished
	drained   sync.Cond // on mu: signalled when inflight returns to zero
	refused   bool      // the last admit failed (log once per episode)
	lastCount time.Time // when refused: recount at most every recountEvery
}

func newQuotaState(q Quota) *quotaState {
	s := &quotaState{limit: q}
	s.drained.L = &s.mu
	return s
}

// recountEvery bounds how often a branch at its limit recounts while writers keep trying.
const recountEvery = time.Second

// SetUsageFunc installs the exact counter quotas need (gc.BranchUsage). Without it, a quota
// is enforced against the estimate alone (every byte written counts).
func (e *Engine) SetUsageFunc(f UsageFunc) { e.usage = f }

// SetQuota sets (or with a zero Quota removes) the limits of branch name.
func (e *Engine) SetQuota(ctx context.Context, name string, q Quota) error {
	if q.Bytes < 0 || q.Inodes < 0 {
		return fmt.Errorf("%w: a quota cannot be negative", ErrInvalidName)
	}
	if _, err := e.GetBranch(name); err != nil {
		return err
	}
	b := e.db.NewBatch()
	defer b.Close()
	if q == (Quota{}) {
		b.Delete(quotaKey(name), nil)
	} else {
		v := binary.BigEndian.AppendUint64(nil, uint64(q.Bytes))
		b.Set(quotaKey(name), binary.BigEndian.AppendUint64(v, uint64(q.Inodes)), nil)
	}
	if err := e.st.CommitDurable(b); err != nil {
		return err
	}
	e.quotaMu.Lock()
	defer e.quotaMu.Unlock()
	if e.quotas == nil {
		e.quotas = map[string]*quotaState{}
	}
	if q == (Quota{}) {
		delete(e.quotas, name)
	} else {
		e.quotas[name] = newQuotaState(q)
	}
	e.publishQuotas()
	return nil
}

// GetQuota returns the limits of branch name (zero: none).
func (e *Engine) GetQuota(name string) (Quota, error) {
	v, ok, err := e.getKey(quotaKey(name))
	if err != nil || !ok {
		return Quota{}, err
	}
	if len(v) != 16 {
		return Quota{}, fmt.Errorf("branch %q: malformed quota record", name)
	}
	return Quota{Bytes: int64(binary.BigEndian.Uint64(v)), Inodes: int64(binary.BigEndian.Uint64(v[8:]))}, nil
}

// loadQuotas reads every stored quota (once, when the first workspace opens).
func (e *Engine) loadQuotas() error {
	e.quotaMu.Lock()
	defer e.quotaMu.Unlock()
	if e.quotas != nil {
		return nil
	}
	e.quotas = map[string]*quotaState{}
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: []byte{pfxQuota}, UpperBound: []byte{pfxQuota + 1}})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		q, err := e.GetQuota(string(it.Key()[1:]))
		if err != nil {
			return err
		}
		e.quotas[string(it.Key()[1:])] = newQuotaState(q)
	}
	e.publishQuotas()
	return it.Error()
}

// publishQuotas makes the quota table visible to writers without a lock (copy on write).
// Called with quotaMu held.
func (e *Engine) publishQuotas() {
	m := make(map[string]*quotaState, len(e.quotas))
	for k, v := range e.quotas {
		m[k] = v
	}
	e.quotaView.Store(&m)
}

// quotaOf returns the accounting of branch name, or nil when it has no quota.
func (e *Engine) quotaOf(name string) *quotaState {
	m := e.quotaView.Load()
	if m == nil {
		return nil
	}
	return (*m)[name]
}

// admitQuota checks that branch name may grow by add (the working layer's Env.Admit). The operation calls the returned
// function when it is done, saying whether it happened, so that concurrent operations are
// counted while they run (an exact count does not see them yet). It returns EDQUOT, and logs
// one line per episode, when the exact usage plus add exceeds a limit. It runs before the
// operation takes any lock: an exact count walks the repository.
func (e *Engine) admitQuota(ctx context.Context, name string, add Usage) (func(bool), error) {
	q := e.quotaOf(name)
	if q == nil {
		return func(bool) {}, nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	fits := func() bool {
		b := q.base.Bytes + q.pending.Bytes + q.inflight.Bytes + add.Bytes
		i := q.base.Inodes + q.pending.Inodes + q.inflight.Inodes + add.Inodes
		return (q.limit.Bytes == 0 || add.Bytes == 0 || b <= q.limit.Bytes) &&
			(q.limit.Inodes == 0 || add.Inodes == 0 || i <= q.limit.Inodes)
	}
	if !q.counted || !fits() {
		if q.refused && time.Since(q.lastCount) < recountEvery {
			return nil, syscall.EDQUOT
		}
		// Count with nothing in flight, so that every finished operation is in the count and
		// none is also in pending.
		for q.inflight != (Usage{}) {
			q.drained.Wait()
		}
		if e.usage != nil {
			u, err := e.usage(ctx, e, name)
			if err != nil {
				return nil, err
			}
			q.base, q.pending, q.lastCount = u, Usage{}, time.Now()
		}
		q.counted = true
		if !fits() {
			if !q.refused {
				e.log.Printf("branch %s is at its quota (%s): a write or create got EDQUOT; raise it with: agentfs branch quota %s --bytes SIZE --inodes N",
					name, q.describe(), name)
			}
			q.refused = true
			return nil, syscall.EDQUOT
		}
	}
	q.refused = false
	q.inflight.Bytes += add.Bytes
	q.inflight.Inodes += add.Inodes
	return func(ok bool) {
		q.mu.Lock()
		defer q.mu.Unlock()
		q.inflight.Bytes -= add.Bytes
		q.inflight.Inodes -= add.Inodes
		if q.inflight == (Usage{}) {
			q.drained.Broadcast()
		}
		if ok {
			q.pending.Bytes += add.Bytes
			q.pending.Inodes += add.Inodes
		}
	}, nil
}

// quotaChanged tells the accounting that the branch's content was replaced (rollback,
// merge, import): the next write counts exactly again.
func (e *Engine) quotaChanged(name string) {
	if q := e.quotaOf(name); q != nil {
		q.mu.Lock()
		q.counted, q.refused = false, false
		q.mu.Unlock()
	}
}

// mergeQuota prepares the quota check of a merge into branch name. It counts the branch's
// usage exactly first, because the count walks the repository and reads the branch, which
// cannot happen under the branch's lock where the merge runs. The returned check, called
// under that lock with what the merge adds, refuses a merge that would take the branch over
// a limit, and otherwise counts the addition until the next exact count.
func (e *Engine) mergeQuota(ctx context.Context, name, src string) (func(add Usage) error, error) {
	q := e.quotaOf(name)
	if q == nil {
		return func(Usage) error { return nil }, nil
	}
	q.mu.Lock()
	for q.inflight != (Usage{}) {
		q.drained.Wait()
	}
	if e.usage != nil {
		u, err := e.usage(ctx, e, name)
		if err != nil {
			q.mu.Unlock()
			return nil, err
		}
		q.base, q.pending, q.lastCount = u, Usage{}, time.Now()
	}
	q.counted = true
	q.mu.Unlock()
	return func(add Usage) error {
		q.mu.Lock()
		defer q.mu.Unlock()
		b := q.base.Bytes + q.pending.Bytes + q.inflight.Bytes + add.Bytes
		i := q.base.Inodes + q.pending.Inodes + q.inflight.Inodes + add.Inodes
		if (q.limit.Bytes > 0 && add.Bytes > 0 && b > q.limit.Bytes) || (q.limit.Inodes > 0 && add.Inodes > 0 && i > q.limit.Inodes) {
			return fmt.Errorf("%w: merging %s would add %d bytes and %d inodes to branch %s, which holds %s; nothing was changed (raise it with: agentfs branch quota %s --bytes SIZE --inodes N)",
				ErrQuota, src, add.Bytes, add.Inodes, name, q.describe(), name)
		}
		q.pending.Bytes += add.Bytes
		q.pending.Inodes += add.Inodes
		return nil
	}, nil
}

// mergeAdds is what a merge from root ours to root merged adds to the target: the inodes it
// adds, and the bytes of the files it adds or grows. The content usually stays shared with
// the source branch, but becomes the target's alone once that branch is deleted, so it
// counts as a write of the same files would. The cost follows the size of the difference.
func (e *Engine) mergeAdds(ctx context.Context, ours, merged store.ID) (Usage, error) {
	var u Usage
	err := e.tree.Diff(ctx, ours, merged, func(k, va, vb []byte) error {
		if len(k) == 0 || k[0] != kindInode || vb == nil {
			return nil
		}
		nb, err := decodeInode(vb)
		if err != nil {
			return err
		}
		if va == nil {
			u.Inodes++
			u.Bytes += int64(nb.Size)
			return nil
		}
		na, err := decodeInode(va)
		if err != nil {
			return err
		}
		if nb.Size > na.Size {
			u.Bytes += int64(nb.Size - na.Size)
		}
		return nil
	})
	return u, err
}

func (q *quotaState) describe() string {
	s := ""
	if q.limit.Bytes > 0 {
		s = fmt.Sprintf("%d of %d bytes", q.base.Bytes, q.limit.Bytes)
	}
	if q.limit.Inodes > 0 {
		if s != "" {
			s += ", "
		}
		s += fmt.Sprintf("%d of %d inodes", q.base.Inodes, q.limit.Inodes)
	}
	return s
}

// forkPoint returns the commit a branch started from: the first commit on the first-parent
// chain of its base that another branch made (zero ID when it has none).
func (e *Engine) forkPoint(ctx context.Context, name string, base store.ID) (store.ID, error) {
	id := base
	for range 1 << 20 {
		c, err := e.ReadCommit(ctx, id)
		if err != nil {
			return store.ID{}, err
		}
		if c.Branch != name {
			return id, nil
		}
		if len(c.Parents) == 0 {
			return store.ID{}, nil
		}
		id = c.Parents[0]
	}
	return store.ID{}, nil
}

// ExclusiveInodes counts the inodes branch name holds that its fork point does not: inodes
// created since it forked (checkpointed or not) that still exist. Inodes it deleted stay in
// the fork point's tree and free nothing, so they do not count either way. Cost: a tree diff
// (proportional to what changed) plus the branch's overlay.
func (e *Engine) ExclusiveInodes(ctx context.Context, name string) (int64, error) {
	ws, err := e.Workspace(ctx, name)
	if err != nil {
		return 0, err
	}
	ws.RLock()
	defer ws.RUnlock()
	root, base := ws.HeadLocked()
	fork, err := e.forkPoint(ctx, name, base)
	if err != nil {
		return 0, err
	}
	var forkRoot store.ID
	if fork != (store.ID{}) {
		c, err := e.ReadCommit(ctx, fork)
		if err != nil {
			return 0, err
		}
		forkRoot = c.Root
	}
	inFork := func(k []byte) (bool, error) {
		if forkRoot == (store.ID{}) {
			return false, nil
		}
		_, ok, err := e.tree.Get(ctx, forkRoot, k)
		return ok, err
	}
	var n int64
	// Committed since the fork: inode keys in the base tree that the fork point lacks.
	if forkRoot != root {
		err = e.tree.Diff(ctx, forkRoot, root, func(k, va, vb []byte) error {
			if len(k) > 0 && k[0] == kindInode && keyIno(k) != RootIno && va == nil && vb != nil {
				n++
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	// Uncommitted: inode keys the overlay sets or deletes.
	p := ws.OverlayKey([]byte{kindInode})
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()[len(overlayPrefix(0)):]
		if keyIno(k) == RootIno {
			continue // every tree has one
		}
		set := len(it.Value()) > 0 && it.Value()[0] != 0
		_, inBase, err := e.tree.Get(ctx, root, k)
		if err != nil {
			return 0, err
		}
		forked, err := inFork(k)
		if err != nil {
			return 0, err
		}
		switch {
		case set && !inBase && !forked:
			n++ // created since the last checkpoint
		case !set && inBase && !forked:
			n-- // created after the fork, checkpointed, now deleted
		}
	}
	return n, it.Error()
}

// dropQuota forgets the accounting of a deleted branch.
func (e *Engine) dropQuota(name string) {
	e.quotaMu.Lock()
	defer e.quotaMu.Unlock()
	if _, ok := e.quotas[name]; ok {
		delete(e.quotas, name)
		e.publishQuotas()
	}
}

// PageBytes returns the bytes of working pages (file data written since the last
// checkpoint, not yet folded into blocks) in overlay id as r sees it: each page counts as
// PageSize, what it may hold (its stored value drops trailing zeros). They belong to that
// overlay's branch alone. Cost: one scan of the overlay's page keys (values not read).
func (e *Engine) PageBytes(r pebble.Reader, overlay uint64) (int64, error) {
	lo := append(overlayPrefix(overlay), kindPage)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	var n int64
	for it.First(); it.Valid(); it.Next() {
		n += PageSize
	}
	return n, it.Error()
}
