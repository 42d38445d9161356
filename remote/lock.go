package remote

// Pushes and remote garbage collection exclude each other through two kinds of small
// objects, written with create-only conditional writes:
//
//	locks/push-<unix-nanos>-<random>   a push in progress (deleted when it ends)
//	locks/gc                           a collection in progress (deleted when it ends)
//
// A push writes its lease, then looks for locks/gc; a collection writes locks/gc, then lists
// the leases. Each writes before it reads, and the stores agentfs supports list and read
// after write consistently, so at least one of the two sees the other and steps back: a push
// never reuses an object that a collection is deleting, and a collection never deletes what
// a running push relies on. After a collection, every push refreshes its index cache, which
// drops the packs whose index is gone (refresh), so no stale cache names a deleted pack.
//
// A lease or lock older than lockTTL belongs to a process that died; it is ignored and
// removed. Pushes must therefore finish within lockTTL (docs/format.md).

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/agentfs/agentfs/backends"
)

const (
	dirLocks = "locks/"
	gcLock   = dirLocks + "gc"
	pushPfx  = dirLocks + "push-"
	lockTTL  = time.Hour
)

// ErrBusy means a push and a remote garbage collection met; the one that stepped back can be
// retried once the other ends.
var ErrBusy = errors.New("remote busy")

func fresh(oi backends.ObjectInfo, now time.Time) bool { return now.Sub(oi.ModTime) < lockTTL }

// pushLease announces a push; release removes the announcement.
func pushLease(ctx context.Context, remote string, b backends.Backend) (release func(), err error) {
	var rnd [8]byte
	rand.Read(rnd[:])
	key := pushPfx + strconv.FormatInt(time.Now().UnixNano(), 10) + "-" + hex.EncodeToString(rnd[:])
	if _, err := b.PutIf(ctx, key, []byte("push\n"), ""); err != nil {
		return nil, fmt.Errorf("remote %s: announce push: %w", remote, err)
	}
	release = func() { b.Delete(context.WithoutCancel(ctx), key) }
	oi, err := b.Stat(ctx, gcLock)
	switch {
	case errors.Is(err, backends.ErrNotExist):
		return release, nil
	case err != nil:
		release()
		return nil, fmt.Errorf("remote %s: check for a collection: %w", remote, err)
	case fresh(oi, time.Now()):
		release()
		return nil, fmt.Errorf("%w: remote %s is being garbage collected (since %s); push again when it ends",
			ErrBusy, remote, oi.ModTime.Format(time.RFC3339))
	}
	return release, nil // a lock left by a collection that died
}

// takeGCLock takes the collection lock and checks that no push is running.
func takeGCLock(ctx context.Context, remote string, b backends.Backend) (release func(), err error) {
	now := time.Now()
	_, err = b.PutIf(ctx, gcLock, []byte("gc\n"), "")
	if errors.Is(err, backends.ErrPrecondition) {
		oi, serr := b.Stat(ctx, gcLock)
		if serr == nil && fresh(oi, now) {
			return nil, fmt.Errorf("%w: another garbage collection of remote %s is running (since %s)", ErrBusy, remote, oi.ModTime.Format(time.RFC3339))
		}
		// Left by a collection that died: replace it.
		_, etag, gerr := b.GetWithETag(ctx, gcLock)
		if gerr != nil {
			return nil, fmt.Errorf("remote %s: stale gc lock: %w", remote, gerr)
		}
		_, err = b.PutIf(ctx, gcLock, []byte("gc\n"), etag)
	}
	if err != nil {
		return nil, fmt.Errorf("remote %s: take the gc lock: %w", remote, err)
	}
	release = func() { b.Delete(context.WithoutCancel(ctx), gcLock) }
	var running int
	err = b.List(ctx, pushPfx, func(oi backends.ObjectInfo) error {
		if !strings.HasPrefix(oi.Key, pushPfx) {
			return nil
		}
		if fresh(oi, now) {
			running++
		} else {
			b.Delete(ctx, oi.Key) // a lease left by a push that died
		}
		return nil
	})
	if err != nil {
		release()
		return nil, fmt.Errorf("remote %s: list pushes: %w", remote, err)
	}
	if running > 0 {
		release()
		return nil, fmt.Errorf("%w: %d push(es) to remote %s are running; collect again when they end", ErrBusy, running, remote)
	}
	return release, nil
}
