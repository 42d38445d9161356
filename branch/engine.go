// Package branch is the version model of agentfs: immutable trees and commits in the block
// store, and branches, each a ref to a base commit plus a mutable working overlay in Pebble.
//
// Fork writes one ref. Checkpoint folds the overlay into new tree nodes (cost follows the
// overlay) and moves the ref. Rollback drops the overlay with one range delete and moves the
// ref. See docs/architecture.md.
package branch

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/agentfs/agentfs/branch/tree"
	"github.com/agentfs/agentfs/internal/kv"
	"github.com/agentfs/agentfs/store"
	"github.com/agentfs/agentfs/work"
)

var (
	ErrNotFound    = errors.New("not found")
	ErrExists      = errors.New("already exists")
	ErrInvalidName = errors.New("invalid name")
	ErrAmbiguous   = errors.New("ambiguous checkpoint id")
	ErrBusy        = errors.New("in use")
	ErrReadOnly    = errors.New("read-only")
	ErrQuota       = errors.New("over quota")
)

// Pebble keys owned by this package (the store owns 'b' and 'B'):
//
//	'R' name                -> branch record
//	'W' branch-id tree-key  -> overlay entry (package work)
//	'N' branch 0 name       -> commit id of a named checkpoint
//	'C' commit-id           -> branch name (index for id-prefix lookups and GC roots)
//	'M' name                -> counters and format
const (
	pfxRef    = 'R'
	pfxName   = 'N'
	pfxCommit = 'C'
	pfxMeta   = 'M'
)

var (
	keyNextIno    = []byte("Mnextino")
	keyNextBranch = []byte("Mnextbranch")
)

// Branch describes a branch.
type Branch struct {
	Name    string
	ID      uint64   // names its current overlay; a new one after every checkpoint, rollback or merge; never reused
	Base    store.ID // the commit its working state starts from
	Created time.Time
}

func encodeBranch(b *Branch) []byte {
	v := make([]byte, 0, 48)
	v = binary.BigEndian.AppendUint64(v, b.ID)
	v = append(v, b.Base[:]...)
	return binary.BigEndian.AppendUint64(v, uint64(b.Created.UnixNano()))
}

func decodeBranch(name string, v []byte) (*Branch, error) {
	if len(v) != 48 {
		return nil, fmt.Errorf("branch %q: malformed record", name)
	}
	b := &Branch{Name: name, ID: binary.BigEndian.Uint64(v)}
	copy(b.Base[:], v[8:40])
	b.Created = time.Unix(0, int64(binary.BigEndian.Uint64(v[40:]))).UTC()
	return b, nil
}

// Options configure an Engine.
type Options struct {
	Now    func() time.Time // nil = time.Now
	Logger *log.Logger
}

// Engine manages the branches and versions of one repository. It is safe for concurrent use.
type Engine struct {
	st   *store.Store
	db   *pebble.DB
	tree *tree.Tree
	now  func() time.Time
	log  *log.Logger

	// opMu lets garbage collection start at a moment when no operation is half done: every
	// operation that writes blocks or references holds it shared (see op), BeginGC holds it
	// exclusively while it opens the store's GC window and snapshots the roots.
	opMu sync.RWMutex
	gc   gcState // the running collection and pinned views (gc.go)

	mu     sync.Mutex            // guards ws and busy; never held across I/O
	ws     map[string]*Workspace // open workspaces by branch name
	busy   map[string]string     // branch -> why it may not be deleted (e.g. "mounted at /x")
	locks  keyedLocks            // per branch and tag: held across a ref's synced commit (locks.go)
	inoMu  sync.Mutex
	inoCur uint64
	inoEnd uint64
	idMu   sync.Mutex // overlay ids reserved in ranges (newBranchID)
	idCur  uint64
	idEnd  uint64

	// Quotas (quota.go): the table, a lock-free copy of it for writers, the exact counter.
	quotaMu   sync.Mutex
	quotas    map[string]*quotaState
	quotaView atomic.Pointer[map[string]*quotaState]
	usage     UsageFunc

	workEnv *work.Env  // what workspaces need from the engine
	folds   foldCaches // folds of working states, reused until they change (foldonce.go)
}

// Open returns an engine over st.
func Open(st *store.Store, o Options) (*Engine, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = log.Default()
	}
	e := &Engine{
		st: st, db: st.DB(), tree: tree.New(st, 8192), now: o.Now, log: o.Logger,
		ws: map[string]*Workspace{}, busy: map[string]string{},
	}
	e.workEnv = e.newEnv()
	st.SetMetadataCopySkip(work.SkipPages)
	if err := e.loadQuotas(); err != nil {
		return nil, err
	}
	return e, nil
}

// op marks an operation in flight for BeginGC; call the returned func when it is done.
// Operations must not nest op calls (a waiting BeginGC would deadlock them).
func (e *Engine) op() func() {
	e.opMu.RLock()
	return e.opMu.RUnlock
}

// BeginGC waits until no operation is in flight, then opens the store's GC window and takes
// a Pebble snapshot of refs and overlays. Every block a live version references is then
// reachable from the snapshot, or is recorded by the window (Put or Retain after this
// point), so a sweep that spares both deletes nothing live. End it with EndGC.
func (e *Engine) BeginGC() (*store.Window, *pebble.Snapshot, error) {
	e.opMu.Lock()
	defer e.opMu.Unlock()
	e.folds.epoch.Add(1) // stored folds no branch references may be swept
	w, err := e.st.BeginGC()
	if err != nil {
		return nil, nil, err
	}
	snap := e.db.NewSnapshot()
	if err := e.gcBegan(w, snap); err != nil { // protects commits revived meanwhile (gc.go)
		snap.Close()
		w.End()
		return nil, nil, err
	}
	return w, snap, nil
}

// Store returns the block store.
func (e *Engine) Store() *store.Store { return e.st }

// Tree returns the tree reader/writer.
func (e *Engine) Tree() *tree.Tree { return e.tree }

func refKey(name string) []byte { return append([]byte{pfxRef}, name...) }

func nameKey(branch, name string) []byte {
	k := append([]byte{pfxName}, branch...)
	return append(append(k, 0), name...)
}

func commitKey(id store.ID) []byte { return append([]byte{pfxCommit}, id[:]...) }

func (e *Engine) getKey(k []byte) ([]byte, bool, error) { return kv.Get(e.db, k) }

// counter returns the next value of a persistent counter, reserving n values.
func (e *Engine) counter(b *pebble.Batch, key []byte, n uint64) (uint64, error) {
	v, ok, err := e.getKey(key)
	if err != nil {
		return 0, err
	}
	next := uint64(2) // 1 is RootIno
	if ok && len(v) == 8 {
		next = binary.BigEndian.Uint64(v)
	}
	return next, b.Set(key, binary.BigEndian.AppendUint64(nil, next+n), nil)
}

// allocIno returns a fresh inode number, unique across all branches of the repository so
// that merging two branches never confuses two different files. Numbers are reserved in
// ranges; the reservation is written before any inode that uses it, so a crash cannot make a
// number be handed out twice.
func (e *Engine) allocIno() (uint64, error) {
	e.inoMu.Lock()
	defer e.inoMu.Unlock()
	if e.inoCur == e.inoEnd {
		b := e.db.NewBatch()
		defer b.Close()
		start, err := e.counter(b, keyNextIno, 1024)
		if err != nil {
			return 0, err
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			return 0, err
		}
		e.inoCur, e.inoEnd = start, start+1024
	}
	e.inoCur++
	return e.inoCur - 1, nil
}

// GetBranch returns the branch called name.
func (e *Engine) GetBranch(name string) (*Branch, error) {
	v, ok, err := e.getKey(refKey(name))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("branch %q: %w", name, ErrNotFound)
	}
	return decodeBranch(name, v)
}

// Branches lists all branches sorted by name.
func (e *Engine) Branches() ([]*Branch, error) {
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: []byte{pfxRef}, UpperBound: []byte{pfxRef + 1}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []*Branch
	for it.First(); it.Valid(); it.Next() {
		b, err := decodeBranch(string(it.Key()[1:]), it.Value())
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, it.Error()
}

// ReadCommit loads and decodes a commit.
func (e *Engine) ReadCommit(ctx context.Context, id store.ID) (*Commit, error) {
	data, err := e.st.Get(ctx, id, nil)
	if err != nil {
		return nil, err
	}
	c, err := decodeCommit(data)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", id, err)
	}
	return c, nil
}

func (e *Engine) writeCommit(ctx context.Context, b *pebble.Batch, c *Commit) (store.ID, error) {
	id, err := e.st.PutBatch(ctx, b, encodeCommit(c))
	if err != nil {
		return store.ID{}, err
	}
	return id, b.Set(commitKey(id), []byte(c.Branch), nil)
}

// emptyRoot builds a tree holding just a root directory.
func (e *Engine) emptyRoot(ctx context.Context) (store.ID, error) {
	now := e.now().UnixNano()
	root := &Inode{Ino: RootIno, Mode: 0o40755, Nlink: 2, Atime: now, Mtime: now, Ctime: now, Parent: RootIno}
	return e.tree.Apply(ctx, store.ID{}, []tree.Mutation{{Key: inodeKey(RootIno), Value: encodeInode(root)}})
}

// CreateBranch creates branch name from ref (a branch, checkpoint id or BRANCH@NAME); an
// empty ref creates a branch holding an empty directory. It costs the same whatever the
// size of the tree: the new branch points at an existing commit with an empty overlay. A
// branch with uncommitted changes is first folded into a commit (cost: those changes).
func (e *Engine) CreateBranch(ctx context.Context, name, from string) (*Branch, error) {
	defer e.op()()
	if err := ValidateName("branch", name); err != nil {
		return nil, err
	}
	var base store.ID
	if from != "" {
		r, err := e.Resolve(ctx, from)
		if err != nil {
			return nil, err
		}
		if base, err = e.commitOf(ctx, r, "fork to "+name); err != nil {
			return nil, err
		}
	}
	defer e.lockBranch(name)()
	if _, ok, err := e.getKey(refKey(name)); err != nil {
		return nil, err
	} else if ok {
		return nil, fmt.Errorf("branch %q %w", name, ErrExists)
	}
	b := e.db.NewBatch()
	defer b.Close()
	if base.IsZero() {
		root, err := e.emptyRoot(ctx)
		if err != nil {
			return nil, err
		}
		if base, err = e.writeCommit(ctx, b, &Commit{Root: root, Time: e.now(), Branch: name, Message: "create branch " + name}); err != nil {
			return nil, err
		}
	} else if err := e.st.Retain(ctx, base); err != nil {
		return nil, err
	}
	id, err := e.newBranchID()
	if err != nil {
		return nil, err
	}
	br := &Branch{Name: name, ID: id, Base: base, Created: e.now().UTC()}
	if err := b.Set(refKey(name), encodeBranch(br), nil); err != nil {
		return nil, err
	}
	beforeRefCommit(name)
	if err := e.st.CommitDurable(b); err != nil {
		return nil, err
	}
	return br, nil
}

// SetBusy marks a branch as in use (reason says how, e.g. "mounted at /mnt"); a busy
// branch cannot be deleted. An empty reason clears it.
func (e *Engine) SetBusy(name, reason string) {
	defer e.lockBranch(name)() // not while DeleteBranch runs
	e.mu.Lock()
	defer e.mu.Unlock()
	if reason == "" {
		delete(e.busy, name)
	} else {
		e.busy[name] = reason
	}
}

// DeleteBranch removes a branch, its working state and its checkpoint names. Its commits
// stay until garbage collection finds nothing else refers to them.
func (e *Engine) DeleteBranch(ctx context.Context, name string) error {
	defer e.lockBranch(name)()
	e.mu.Lock()
	why, busy := e.busy[name]
	e.mu.Unlock()
	if busy {
		return fmt.Errorf("branch %q is %w (%s)", name, ErrBusy, why)
	}
	br, err := e.GetBranch(name)
	if err != nil {
		return err
	}
	b := e.db.NewBatch()
	defer b.Close()
	p := overlayPrefix(br.ID)
	if err := b.DeleteRange(p, prefixEnd(p), nil); err != nil {
		return err
	}
	np := nameKey(name, "")
	if err := b.DeleteRange(np, prefixEnd(np), nil); err != nil {
		return err
	}
	if err := b.Delete(refKey(name), nil); err != nil {
		return err
	}
	if err := b.Delete(pendingKey(name), nil); err != nil { // a merge into it was pending
		return err
	}
	if err := b.Delete(quotaKey(name), nil); err != nil {
		return err
	}
	if err := b.Delete(retentionKey(name), nil); err != nil {
		return err
	}
	beforeRefCommit(name)
	if err := e.st.CommitDurable(b); err != nil {
		return err
	}
	e.mu.Lock()
	if ws, ok := e.ws[name]; ok {
		e.dropFold(ws)
	}
	delete(e.ws, name)
	e.mu.Unlock()
	e.dropQuota(name)
	return nil
}

// Ref is a resolved reference: a branch's live state, or a commit.
type Ref struct {
	Branch string   // set when the ref names a branch's current state
	Commit store.ID // the commit (for a branch, its base)
}

// Resolve parses a ref: a branch name, BRANCH@NAME, or a checkpoint id or unique prefix of
// one (at least 4 hex digits).
func (e *Engine) Resolve(ctx context.Context, s string) (Ref, error) {
	if s == "" {
		return Ref{}, fmt.Errorf("%w: empty ref", ErrInvalidName)
	}
	if br, name, ok := strings.Cut(s, "@"); ok {
		if br == "" || name == "" {
			return Ref{}, fmt.Errorf("%w: %q: write BRANCH@CHECKPOINT", ErrInvalidName, s)
		}
		v, ok, err := e.getKey(nameKey(br, name))
		if err != nil {
			return Ref{}, err
		}
		if !ok {
			return Ref{}, fmt.Errorf("checkpoint %q: %w (list them with: agentfs log %s)", s, ErrNotFound, br)
		}
		var id store.ID
		copy(id[:], v)
		return Ref{Commit: id}, nil
	}
	if b, err := e.GetBranch(s); err == nil {
		return Ref{Branch: s, Commit: b.Base}, nil
	} else if !errors.Is(err, ErrNotFound) {
		return Ref{}, err
	}
	if id, ok, err := e.tagCommit(s); err != nil {
		return Ref{}, err
	} else if ok {
		return Ref{Commit: id}, nil
	}
	if len(s) >= 4 && len(s) <= 64 && isHex(s) {
		id, err := e.lookupCommitPrefix(strings.ToLower(s))
		if err == nil || !errors.Is(err, ErrNotFound) {
			return Ref{Commit: id}, err
		}
	}
	return Ref{}, fmt.Errorf("%q is neither a branch nor a checkpoint id: %w (see: agentfs branch list)", s, ErrNotFound)
}

func isHex(s string) bool {
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return false
		}
	}
	return true
}

func (e *Engine) lookupCommitPrefix(prefix string) (store.ID, error) {
	// Decode the even-length part of the prefix into bytes to bound the Pebble scan.
	raw, _ := hex.DecodeString(prefix[:len(prefix)&^1])
	lo := append([]byte{pfxCommit}, raw...)
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
	if err != nil {
		return store.ID{}, err
	}
	defer it.Close()
	var found []store.ID
	for it.First(); it.Valid() && len(found) < 2; it.Next() {
		var id store.ID
		copy(id[:], it.Key()[1:])
		if strings.HasPrefix(id.String(), prefix) {
			found = append(found, id)
		}
	}
	switch len(found) {
	case 0:
		return store.ID{}, fmt.Errorf("checkpoint %s: %w", prefix, ErrNotFound)
	case 1:
		return found[0], nil
	default:
		return store.ID{}, fmt.Errorf("%w: %s matches several checkpoints; give more digits", ErrAmbiguous, prefix)
	}
}

// commitOf returns a commit holding the ref's state. For a branch with uncommitted changes
// that is a new commit folding them in (the branch itself is left as it was).
func (e *Engine) commitOf(ctx context.Context, r Ref, msg string) (store.ID, error) {
	if r.Branch == "" {
		return r.Commit, e.retainCommit(ctx, r.Commit) // also its tree while gc runs (gc.go)
	}
	ws, err := e.Workspace(ctx, r.Branch)
	if err != nil {
		return store.ID{}, err
	}
	return e.snapshotCommit(ctx, ws, msg)
}

// RootOf returns the tree root of a ref's current state.
func (e *Engine) RootOf(ctx context.Context, r Ref) (store.ID, error) {
	defer e.op()()
	return e.rootOf(ctx, r)
}

func (e *Engine) rootOf(ctx context.Context, r Ref) (store.ID, error) {
	if r.Branch != "" {
		ws, err := e.Workspace(ctx, r.Branch)
		if err != nil {
			return store.ID{}, err
		}
		return e.currentRoot(ctx, ws)
	}
	c, err := e.ReadCommit(ctx, r.Commit)
	if err != nil {
		return store.ID{}, err
	}
	return c.Root, nil
}

// Checkpoint makes the branch's current state (including data still buffered for open
// files) an immutable commit and returns its id. Its cost follows the changes since the
// branch's base, not the size of the tree.
func (e *Engine) Checkpoint(ctx context.Context, branch, name, msg string) (store.ID, error) {
	id, _, err := e.CheckpointWith(ctx, branch, CheckpointOptions{Name: name, Message: msg})
	return id, err
}

// CheckpointOptions are the optional parts of a checkpoint.
type CheckpointOptions struct {
	Name    string // BRANCH@NAME then refers to it
	Message string
	Provenance
	// ifChanged makes no checkpoint when the state is its base's (CheckpointIfChanged): the
	// checkpoint returns the base and errUnchanged.
	ifChanged bool
}

// errUnchanged: a checkpoint with ifChanged found the state the same as its base's.
var errUnchanged = errors.New("unchanged since the last checkpoint")

// CheckpointWith is Checkpoint with provenance; it also returns the paths changed since the
// branch's base.
func (e *Engine) CheckpointWith(ctx context.Context, branch string, o CheckpointOptions) (store.ID, []Change, error) {
	defer e.op()()
	if err := o.Provenance.Validate(); err != nil {
		return store.ID{}, nil, err
	}
	if o.Name != "" {
		if err := ValidateName("checkpoint", o.Name); err != nil {
			return store.ID{}, nil, err
		}
		if _, ok, err := e.getKey(nameKey(branch, o.Name)); err != nil {
			return store.ID{}, nil, err
		} else if ok {
			return store.ID{}, nil, fmt.Errorf("checkpoint %s@%s %w", branch, o.Name, ErrExists)
		}
	}
	ws, err := e.Workspace(ctx, branch)
	if err != nil {
		return store.ID{}, nil, err
	}
	return e.checkpointWith(ctx, ws, o)
}

// Rollback discards the branch's working state and points it at ref's state. Mounted views
// of the branch are told to drop their caches.
func (e *Engine) Rollback(ctx context.Context, branch, ref string) error {
	ws, err := e.Workspace(ctx, branch)
	if err != nil {
		return err
	}
	done := e.op()
	r, err := e.Resolve(ctx, ref)
	if err != nil {
		done()
		return err
	}
	target, err := e.commitOf(ctx, r, "rollback of "+branch)
	if err != nil {
		done()
		return err
	}
	hooks, err := e.reset(ctx, ws, target)
	if err == nil {
		e.quotaChanged(branch) // the branch may now hold more than the quota's last count
	}
	done()
	// Hooks invalidate kernel caches, which may call back into the mount: run them after
	// op is released.
	for _, h := range hooks {
		h()
	}
	return err
}

// Log returns the history of a branch, newest first, following all parents.
func (e *Engine) Log(ctx context.Context, branch string) ([]LogEntry, error) {
	br, err := e.GetBranch(branch)
	if err != nil {
		return nil, err
	}
	seen := map[store.ID]bool{br.Base: true}
	queue := []store.ID{br.Base}
	var out []LogEntry
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		c, err := e.ReadCommit(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue // history before a pruned checkpoint
		}
		if err != nil {
			return nil, err
		}
		out = append(out, LogEntry{ID: id, Commit: c})
		for _, p := range c.Parents {
			if !seen[p] {
				seen[p] = true
				queue = append(queue, p)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Commit.Time.After(out[j].Commit.Time) })
	return out, nil
}

// LogEntry is one checkpoint in a branch's history.
type LogEntry struct {
	ID store.ID
	*Commit
}

// Workspace returns the shared working view of a branch. Opening one reads its base commit
// (which may come from a remote) under the branch's lock only.
func (e *Engine) Workspace(ctx context.Context, name string) (*Workspace, error) {
	if ws := e.cachedWorkspace(name); ws != nil {
		return ws, nil
	}
	defer e.lockBranch(name)()
	if ws := e.cachedWorkspace(name); ws != nil {
		return ws, nil
	}
	br, err := e.GetBranch(name)
	if err != nil {
		return nil, err
	}
	c, err := e.ReadCommit(ctx, br.Base)
	if err != nil {
		return nil, err
	}
	ws := newWorkspace(e, br, c.Root)
	if err := ws.PurgeOrphans(ctx); err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.ws[name] = ws
	e.mu.Unlock()
	return ws, nil
}

// View returns a read-only view of a commit's tree.
func (e *Engine) View(ctx context.Context, commit store.ID) (*Workspace, error) {
	if err := e.checkNotPruned(commit); err != nil {
		return nil, err
	}
	c, err := e.ReadCommit(ctx, commit)
	if err != nil {
		return nil, err
	}
	return newView(e, c.Root), nil
}

// Open returns a view of ref: the shared workspace of a branch, or a read-only view of a
// commit.
func (e *Engine) Open(ctx context.Context, ref string) (*Workspace, Ref, error) {
	r, err := e.Resolve(ctx, ref)
	if err != nil {
		return nil, Ref{}, err
	}
	if r.Branch != "" {
		ws, err := e.Workspace(ctx, r.Branch)
		return ws, r, err
	}
	ws, err := e.View(ctx, r.Commit)
	return ws, r, err
}

// Flush writes every workspace's buffered data into the repository and syncs it.
func (e *Engine) Flush(ctx context.Context) error {
	e.mu.Lock()
	all := make([]*Workspace, 0, len(e.ws))
	for _, ws := range e.ws {
		all = append(all, ws)
	}
	e.mu.Unlock()
	for _, ws := range all {
		if err := ws.FlushAll(ctx); err != nil {
			return err
		}
	}
	return e.st.Sync()
}
