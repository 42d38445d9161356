package remote

// Pushes and remote garbage collection exclude each other through leases: small objects in
// the bucket, written create-only and then renewed by compare-and-swap while their holder
// works:
//
//	locks/push-<unix-nanos>-<random>   a push in progress (deleted when it ends)
//	locks/gc                           a collection in progress (deleted when it ends)
//
// Each lease's body names its holder: a random token (unique per holder), host, pid, TTL and
// the time of its last renewal. A push writes its lease, then looks for a live locks/gc; a
// collection writes locks/gc, then lists the push leases. Each writes before it reads, and
// the stores agentfs supports list and read after write consistently, so at least one of the
// two sees the other and steps back.
//
// A lease whose object was not rewritten for TTL (the storage service's ModTime against this
// host's clock) belongs to a holder that died or stalled: others ignore and remove it. The
// holder renews every TTL/5 and, before it acts on the lease (a push before it moves its ref,
// a collection before every write and delete), checks that its last renewal is younger than
// TTL/2 and that the object still holds its token (fencing). A holder that stalled longer
// than that stops instead of acting. Correctness therefore needs the clocks of the hosts and
// the storage service to differ by less than TTL/2 (docs/format.md).

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agentfs/agentfs/backends"
)

const (
	dirLocks = "locks/"
	gcLock   = dirLocks + "gc"
	pushPfx  = dirLocks + "push-"
	// DefaultLeaseTTL is how long a lease lives without renewal (AGENTFS_LEASE_TTL).
	DefaultLeaseTTL = 10 * time.Minute
	maxLeaseBody    = 4 << 10
)

// ErrBusy means a push and a remote garbage collection met; the one that stepped back can be
// retried once the other ends.
var ErrBusy = errors.New("remote busy")

// ErrLeaseLost means a holder could not keep its lease alive (it stalled, or the bucket was
// unreachable for longer than half the lease's TTL); it stopped before acting on it.
var ErrLeaseLost = errors.New("remote lease lost")

// leaseBody is the content of a lease object.
type leaseBody struct {
	Kind    string    `json:"kind"` // "push" or "gc"
	Token   string    `json:"token"`
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	TTL     string    `json:"ttl"`
	Renewed time.Time `json:"renewed"`
}

// lease is one held lease, renewed in the background until released.
type lease struct {
	b      backends.Backend
	ring   *keyRing // seals the body in an encrypted remote
	remote string
	key    string
	ttl    time.Duration
	body   leaseBody

	mu      sync.Mutex
	etag    string
	renewed time.Time // local clock, last successful write
	lost    error

	stop chan struct{}
	done chan struct{}
}

func newToken() string {
	var rnd [16]byte
	rand.Read(rnd[:])
	return hex.EncodeToString(rnd[:])
}

func (m *Manager) newLease(remote string, b backends.Backend, kind, key string) *lease {
	m.mu.Lock()
	ring := m.rings[remote] // loaded by Push or GC before they take a lease
	m.mu.Unlock()
	return &lease{b: b, ring: ring, remote: remote, key: key, ttl: m.o.LeaseTTL,
		body: leaseBody{Kind: kind, Token: newToken(), Host: m.o.Host, PID: os.Getpid(), TTL: m.o.LeaseTTL.String()}}
}

func (l *lease) encode() []byte {
	l.body.Renewed = time.Now().UTC()
	data, _ := json.Marshal(l.body)
	return l.ring.sealWhole("lease", l.key, data)
}

// ours reports whether the object at the lease's key holds this lease's token.
func (l *lease) ours(ctx context.Context) (etag string, ok bool, err error) {
	data, etag, err := getCapped(ctx, l.b, l.key, maxLeaseBody)
	if err != nil {
		return "", false, err
	}
	var lb leaseBody
	if data, err = l.ring.openWhole("lease", l.key, data); err != nil {
		return etag, false, nil
	}
	return etag, json.Unmarshal(data, &lb) == nil && lb.Token == l.body.Token, nil
}

// create writes the lease create-only (ifMatch "") or over a stale one (ifMatch its ETag).
// A retried write whose first attempt landed is recognised by its token.
func (l *lease) create(ctx context.Context, ifMatch string) error {
	etag, err := l.b.PutIf(ctx, l.key, l.encode(), ifMatch)
	if errors.Is(err, backends.ErrPrecondition) {
		if tag, ok, rerr := l.ours(ctx); rerr == nil && ok {
			etag, err = tag, nil
		}
	}
	if err != nil {
		return err
	}
	l.etag, l.renewed = etag, time.Now()
	l.stop, l.done = make(chan struct{}), make(chan struct{})
	go l.renewLoop()
	return nil
}

func (l *lease) renewLoop() {
	defer close(l.done)
	tick := time.NewTicker(l.ttl / 5)
	defer tick.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-tick.C:
		}
		l.mu.Lock()
		etag := l.etag
		l.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), l.ttl/5)
		tag, err := l.b.PutIf(ctx, l.key, l.encode(), etag)
		if errors.Is(err, backends.ErrPrecondition) || errors.Is(err, backends.ErrNotExist) {
			// The retried write may have landed: look before giving up.
			if t2, ok, rerr := l.ours(ctx); rerr == nil && ok {
				tag, err = t2, nil
			}
		}
		cancel()
		l.mu.Lock()
		switch {
		case err == nil:
			l.etag, l.renewed = tag, time.Now()
		case errors.Is(err, backends.ErrPrecondition), errors.Is(err, backends.ErrNotExist):
			l.lost = fmt.Errorf("%w: remote %s: %s was removed or taken by another holder", ErrLeaseLost, l.remote, l.key)
		}
		// Other errors: try again at the next tick; check() fails once the lease is too old.
		stopped := l.lost != nil
		l.mu.Unlock()
		if stopped {
			return
		}
	}
}

// check is the fence: it fails unless the lease was renewed within TTL/2 and the object
// still holds this holder's token.
func (l *lease) check(ctx context.Context) error {
	l.mu.Lock()
	lost, age := l.lost, time.Since(l.renewed)
	l.mu.Unlock()
	if lost != nil {
		return lost
	}
	if age > l.ttl/2 {
		return fmt.Errorf("%w: remote %s: %s was last renewed %s ago (TTL %s)", ErrLeaseLost, l.remote, l.key, age.Round(time.Millisecond), l.ttl)
	}
	if _, ok, err := l.ours(ctx); errors.Is(err, backends.ErrNotExist) {
		return fmt.Errorf("%w: remote %s: %s was removed", ErrLeaseLost, l.remote, l.key)
	} else if err != nil {
		return fmt.Errorf("remote %s: check lease %s: %w", l.remote, l.key, err)
	} else if !ok {
		return fmt.Errorf("%w: remote %s: %s now belongs to another holder", ErrLeaseLost, l.remote, l.key)
	}
	return nil
}

// release stops renewing and deletes the lease if it is still ours.
func (l *lease) release(ctx context.Context) {
	close(l.stop)
	<-l.done
	ctx = context.WithoutCancel(ctx)
	if _, ok, err := l.ours(ctx); err == nil && ok {
		l.b.Delete(ctx, l.key)
	}
}

// stale reports whether a lease object was not renewed for ttl.
func stale(oi backends.ObjectInfo, ttl time.Duration, now time.Time) bool {
	return now.Sub(oi.ModTime) >= ttl
}

// pushLease announces a push and keeps the announcement alive until released.
func (m *Manager) pushLease(ctx context.Context, remote string, b backends.Backend) (*lease, error) {
	key := pushPfx + strconv.FormatInt(time.Now().UnixNano(), 10) + "-" + newToken()[:16]
	l := m.newLease(remote, b, "push", key)
	if err := l.create(ctx, ""); err != nil {
		return nil, fmt.Errorf("remote %s: announce push: %w", remote, err)
	}
	oi, err := b.Stat(ctx, gcLock)
	switch {
	case errors.Is(err, backends.ErrNotExist):
		return l, nil
	case err != nil:
		l.release(ctx)
		return nil, fmt.Errorf("remote %s: check for a collection: %w", remote, err)
	case !stale(oi, m.o.LeaseTTL, time.Now()):
		l.release(ctx)
		return nil, fmt.Errorf("%w: remote %s is being garbage collected (since %s); push again when it ends",
			ErrBusy, remote, oi.ModTime.Format(time.RFC3339))
	}
	return l, nil // a lock left by a collection that died
}

// gcLease takes the collection lock and checks that no push is running.
func (m *Manager) gcLease(ctx context.Context, remote string, b backends.Backend) (*lease, error) {
	ttl := m.o.LeaseTTL
	l := m.newLease(remote, b, "gc", gcLock)
	err := l.create(ctx, "")
	if errors.Is(err, backends.ErrPrecondition) {
		oi, serr := b.Stat(ctx, gcLock)
		if serr == nil && !stale(oi, ttl, time.Now()) {
			return nil, fmt.Errorf("%w: another garbage collection of remote %s is running (since %s)", ErrBusy, remote, oi.ModTime.Format(time.RFC3339))
		}
		// Left by a collection that died: replace it by compare-and-swap, so that of two
		// hosts doing this at once only one wins.
		_, etag, gerr := getCapped(ctx, b, gcLock, maxLeaseBody)
		if gerr != nil {
			return nil, fmt.Errorf("remote %s: stale gc lock: %w", remote, gerr)
		}
		err = l.create(ctx, etag)
		if errors.Is(err, backends.ErrPrecondition) {
			return nil, fmt.Errorf("%w: another garbage collection of remote %s has just started", ErrBusy, remote)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("remote %s: take the gc lock: %w", remote, err)
	}
	now := time.Now()
	var running int
	err = b.List(ctx, pushPfx, func(oi backends.ObjectInfo) error {
		if !strings.HasPrefix(oi.Key, pushPfx) {
			return nil
		}
		if stale(oi, ttl, now) {
			b.Delete(ctx, oi.Key) // a lease left by a push that died
		} else {
			running++
		}
		return nil
	})
	if err != nil {
		l.release(ctx)
		return nil, fmt.Errorf("remote %s: list pushes: %w", remote, err)
	}
	if running > 0 {
		l.release(ctx)
		return nil, fmt.Errorf("%w: %d push(es) to remote %s are running; collect again when they end", ErrBusy, running, remote)
	}
	return l, nil
}
