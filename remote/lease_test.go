package remote

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/agentfs/agentfs/backends"
	_ "github.com/agentfs/agentfs/backends/file"
)

// Leases are renewed while held, fenced when lost, recognised by their token after a
// retried write, and replaced only when stale.
func TestLeases(t *testing.T) {
	ctx := context.Background()
	b, err := backends.Open(ctx, "file://"+t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ttl := 600 * time.Millisecond
	m := &Manager{o: Options{LeaseTTL: ttl, Host: "test"}}

	// Renewed: after several TTLs the lease is still fresh and passes its fence.
	l, err := m.pushLease(ctx, "r", b)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * ttl)
	oi, err := b.Stat(ctx, l.key)
	if err != nil || stale(oi, ttl, time.Now()) {
		t.Fatalf("lease not renewed: %v %v", oi.ModTime, err)
	}
	if err := l.check(ctx); err != nil {
		t.Fatalf("fence of a held lease: %v", err)
	}
	// A collection sees the push and steps back.
	if _, err := m.gcLease(ctx, "r", b); !errors.Is(err, ErrBusy) {
		t.Fatalf("gc during a push: %v, want ErrBusy", err)
	}
	// Taken away (another host judged it stale and removed it): the fence fails.
	b.Delete(ctx, l.key)
	time.Sleep(ttl / 2)
	if err := l.check(ctx); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("fence of a removed lease: %v, want ErrLeaseLost", err)
	}
	l.release(ctx)

	// A retried create whose first attempt landed is recognised as ours.
	g := m.newLease("r", b, "gc", gcLock)
	if _, err := b.PutIf(ctx, gcLock, g.encode(), ""); err != nil {
		t.Fatal(err)
	}
	if err := g.create(ctx, ""); err != nil {
		t.Fatalf("retried create of our own lease: %v", err)
	}
	// Another collection is refused while it is held...
	if _, err := m.gcLease(ctx, "r", b); !errors.Is(err, ErrBusy) {
		t.Fatalf("second gc: %v, want ErrBusy", err)
	}
	// ...and takes it over once the holder stopped renewing for a TTL.
	close(g.stop)
	<-g.done
	time.Sleep(ttl + ttl/4)
	g2, err := m.gcLease(ctx, "r", b)
	if err != nil {
		t.Fatalf("gc after a stale lock: %v", err)
	}
	if err := g.check(ctx); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("fence of the stalled holder: %v, want ErrLeaseLost", err)
	}
	g2.release(ctx)
	var left []string
	b.List(ctx, dirLocks, func(oi backends.ObjectInfo) error { left = append(left, oi.Key); return nil })
	if len(left) != 0 {
		t.Fatalf("locks left: %v", left)
	}
}
