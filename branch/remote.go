package branch

// What package remote (push, pull, clone, lazy fetch) needs from the engine. The remote
// package keeps its own state in the shared Pebble DB under two prefixes, documented here with
// the rest of the key schema (see the list in engine.go):
//
//	'X' remote 0 'u'                    -> remote URL
//	'X' remote 0 't' branch             -> tracking ref: 32-byte commit id the remote branch had
//	                                       at the last pull or push, then the ref object's ETag
//	'X' remote 0 'i' pack-id            -> 8-byte pack size: the pack's index is loaded below
//	'X' remote 0 'o' pack-id offset(8)  -> 32-byte object id + uvarint length + kind: the pack's
//	                                       entries in pack order (read-ahead follows it)
//	'Y' object-id remote                -> pack-id(32) + offset(8) + length(4) + kind(1): where
//	                                       the remote keeps the object (the remote index cache)
//
// A remote name is a valid branch name (no NUL), so "remote 0" never prefixes another remote's
// keys. The cache only grows from listing the bucket's index objects, which are immutable, so
// it is never wrong about what the remote has, only late.

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/agentfs/agentfs/store"
)

// Pebble key prefixes owned by package remote.
const (
	PrefixRemote      = 'X'
	PrefixRemoteIndex = 'Y'
)

// ErrNotFastForward: the branch moved or has uncommitted changes, so it cannot simply be
// moved to the fetched commit.
var ErrNotFastForward = errors.New("not a fast-forward")

// AdoptCommits records fetched commits in the commit index (so that their ids resolve, by
// prefix too, and garbage collection treats them as roots). The commits must be in the store
// (or fetchable). Commits already indexed are left alone.
func (e *Engine) AdoptCommits(ctx context.Context, ids []store.ID) error {
	defer e.op()()
	b := e.db.NewBatch()
	defer b.Close()
	for _, id := range ids {
		if _, ok, err := e.getKey(commitKey(id)); err != nil {
			return err
		} else if ok {
			continue
		}
		c, err := e.ReadCommit(ctx, id)
		if err != nil {
			return err
		}
		if err := b.Set(commitKey(id), []byte(c.Branch), nil); err != nil {
			return err
		}
	}
	return e.st.CommitDurable(b)
}

// CreateBranchAt creates branch name pointing at commit (which must be in the store or
// fetchable), with an empty overlay.
func (e *Engine) CreateBranchAt(ctx context.Context, name string, commit store.ID) (*Branch, error) {
	if err := e.AdoptCommits(ctx, []store.ID{commit}); err != nil {
		return nil, err
	}
	return e.CreateBranch(ctx, name, commit.String())
}

// FastForward moves branch name from commit from to commit to, if it is still at from and
// has no uncommitted changes; otherwise it returns ErrNotFastForward and changes nothing.
// Mounts of the branch are told to drop their caches.
func (e *Engine) FastForward(ctx context.Context, name string, from, to store.ID) error {
	ws, err := e.Workspace(ctx, name)
	if err != nil {
		return err
	}
	if err := e.AdoptCommits(ctx, []store.ID{to}); err != nil {
		return err
	}
	c, err := e.ReadCommit(ctx, to)
	if err != nil {
		return err
	}
	done := e.op()
	hooks, err := func() ([]func(), error) {
		ws.Lock()
		defer ws.Unlock()
		if ws.BaseLocked() != from {
			return nil, fmt.Errorf("branch %q: %w (it moved or has changes)", name, ErrNotFastForward)
		}
		prefix := overlayPrefix(ws.OverlayID())
		it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
		if err != nil {
			return nil, err
		}
		changed := it.First()
		if err := errors.Join(it.Error(), it.Close()); err != nil {
			return nil, err
		}
		if changed {
			return nil, fmt.Errorf("branch %q: %w (it has uncommitted changes)", name, ErrNotFastForward)
		}
		b := e.db.NewBatch()
		defer b.Close()
		if err := e.moveBase(ws, b, to); err != nil {
			return nil, err
		}
		ws.ReplaceContentLocked(c.Root, to)
		return ws.HooksLocked(), nil
	}()
	done()
	for _, h := range hooks {
		h()
	}
	return err
}

// DescendsFrom reports whether commit anc is commit id or one of its ancestors. It reads
// commits (fetching them if a fetcher is set) and gives up after limit commits (returning
// false); history cut off by a missing commit counts as not found.
func (e *Engine) DescendsFrom(ctx context.Context, id, anc store.ID, limit int) (bool, error) {
	if id == anc {
		return true, nil
	}
	seen := map[store.ID]bool{id: true}
	queue := []store.ID{id}
	for len(queue) > 0 && len(seen) <= limit {
		c, err := e.ReadCommit(ctx, queue[0])
		queue = queue[1:]
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return false, err
		}
		for _, p := range c.Parents {
			if p == anc {
				return true, nil
			}
			if !seen[p] {
				seen[p] = true
				queue = append(queue, p)
			}
		}
	}
	return false, nil
}

// inodeRegionBits: a repository made by clone allocates inode numbers in a region of its own
// (a random multiple of 2^inodeRegionBits), so that files created on different hosts after
// a clone never share an inode number and merges across hosts do not confuse them.
const inodeRegionBits = 30

// UseOwnInodeRegion moves the inode counter into a random region of 2^30 numbers unless it
// is already outside region 0 (the region of a repository made by init). Clone calls it.
func (e *Engine) UseOwnInodeRegion() error {
	e.inoMu.Lock()
	defer e.inoMu.Unlock()
	v, ok, err := e.getKey(keyNextIno)
	if err != nil {
		return err
	}
	if ok && len(v) == 8 && binary.BigEndian.Uint64(v)>>inodeRegionBits != 0 {
		return nil
	}
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		return err
	}
	region := uint64(binary.BigEndian.Uint32(r[:])|1) & (1<<32 - 1)
	next := region << inodeRegionBits
	if err := e.st.Durable(func() error { return e.db.Set(keyNextIno, binary.BigEndian.AppendUint64(nil, next), pebble.Sync) }); err != nil {
		return err
	}
	e.inoCur, e.inoEnd = 0, 0
	return nil
}
