package backendtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentfs/agentfs/backends"
	"github.com/agentfs/agentfs/backends/fault"
)

// DefaultFaults is a moderate mix: about a quarter of requests misbehave.
var DefaultFaults = fault.Config{Error5xx: 0.08, DropBefore: 0.05, DropAfter: 0.04, CutBody: 0.05, Delay: 0.03, DelayFor: 50 * time.Millisecond, Seed: 42}

// RunFaults checks b, which talks to its server through p, while p injects cfg: every
// operation either succeeds or fails with an error (and within a time bound), a Get that
// succeeds returns exactly the stored bytes, nothing that Put acknowledged is lost, PutIf keeps
// its compare-and-swap meaning, and with every request failing an operation gives up after a
// bounded number of requests. b must have been opened with backends.Open (retries on).
func RunFaults(t *testing.T, b backends.Backend, p *fault.Proxy, cfg fault.Config) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ns := "faults-" + randHex(6) + "/"
	t.Cleanup(func() {
		p.SetConfig(fault.Config{})
		_ = b.List(context.Background(), ns, func(oi backends.ObjectInfo) error { return b.Delete(context.Background(), oi.Key) })
	})
	const opBound = 60 * time.Second
	timed := func(what string, f func() error) error {
		start := time.Now()
		err := f()
		if d := time.Since(start); d > opBound {
			t.Errorf("%s took %v (bound %v): retries are not bounded", what, d, opBound)
		}
		return err
	}

	t.Run("PutGet", func(t *testing.T) {
		p.SetConfig(cfg)
		sizes := []int{0, 1, 1000, 64 << 10, 300 << 10, 1 << 20, 3 << 20}
		type obj struct {
			key  string
			data []byte
		}
		var (
			mu      sync.Mutex
			acked   []obj
			putErrs []error
			wg      sync.WaitGroup
		)
		for i := 0; i < 40; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				data := RandomBytes(uint64(1000+i), sizes[i%len(sizes)]+i)
				key := fmt.Sprintf("%sobj/%03d", ns, i)
				err := timed("Put "+key, func() error { return b.Put(ctx, key, bytes.NewReader(data), int64(len(data))) })
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					putErrs = append(putErrs, err)
					return
				}
				acked = append(acked, obj{key, data})
			}()
		}
		wg.Wait()
		for _, err := range putErrs {
			t.Logf("Put failed (allowed, must be clear): %v", err)
			if err.Error() == "" {
				t.Errorf("Put failed with an empty message")
			}
		}
		if len(acked) < 30 {
			t.Errorf("only %d of 40 Puts succeeded under moderate faults: retries are not doing their job", len(acked))
		}

		// Reads under faults: success means exactly the right bytes.
		var getOK, getErr int
		for round := 0; round < 3; round++ {
			for _, o := range acked {
				off, length := int64(0), int64(-1)
				if round == 1 && len(o.data) > 10 {
					off, length = int64(len(o.data)/3), int64(len(o.data)/3)
				}
				var got []byte
				err := timed("Get "+o.key, func() error {
					rc, err := b.Get(ctx, o.key, off, length)
					if err != nil {
						return err
					}
					defer rc.Close()
					got, err = io.ReadAll(rc)
					return err
				})
				if err != nil {
					getErr++
					t.Logf("Get failed (allowed): %v", err)
					continue
				}
				getOK++
				want := o.data[off:]
				if length >= 0 {
					want = o.data[off : off+length]
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("Get(%s, %d, %d) under faults returned %d bytes that differ from the %d stored: corrupted or short read",
						o.key, off, length, len(got), len(want))
				}
			}
		}
		if getOK < getErr*4 {
			t.Errorf("Gets under faults: %d ok, %d failed: retries are not doing their job", getOK, getErr)
		}

		// With the faults off, everything acknowledged is there, byte for byte.
		p.SetConfig(fault.Config{})
		for _, o := range acked {
			rc, err := b.Get(ctx, o.key, 0, -1)
			if err != nil {
				t.Fatalf("acknowledged object %s lost: %v", o.key, err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, o.data) {
				t.Fatalf("acknowledged object %s reads back wrong (%d bytes, err %v)", o.key, len(got), err)
			}
		}
		t.Logf("puts: %d ok, %d failed; gets: %d ok, %d failed; proxy: %v", len(acked), len(putErrs), getOK, getErr, p.Stats())
	})

	t.Run("PutIfChain", func(t *testing.T) {
		p.SetConfig(cfg)
		key := ns + "refs/main"
		var (
			etag     string
			ackedVal string // last value PutIf acknowledged
			since    []string
		)
		for i := 0; i < 40; i++ {
			val := fmt.Sprintf("commit-%03d", i)
			var newTag string
			err := timed("PutIf", func() error {
				var err error
				newTag, err = b.PutIf(ctx, key, []byte(val), etag)
				return err
			})
			if err == nil {
				etag, ackedVal, since = newTag, val, nil
				continue
			}
			since = append(since, val)
			if !errors.Is(err, backends.ErrPrecondition) {
				t.Logf("PutIf failed (allowed): %v", err)
			} else {
				t.Logf("PutIf reported a lost race (allowed only when an earlier attempt's outcome was unknown): %v", err)
			}
			// Re-read the ref as a real caller would, and go on from there.
			data, tag, gerr := b.GetWithETag(ctx, key)
			if gerr == nil {
				etag, ackedVal, since = tag, string(data), nil
			} else if !errors.Is(gerr, backends.ErrNotExist) {
				t.Logf("GetWithETag failed (allowed): %v", gerr)
			}
		}
		p.SetConfig(fault.Config{})
		data, tag, err := b.GetWithETag(ctx, key)
		if err != nil {
			t.Fatalf("reading the ref after the faults: %v", err)
		}
		ok := string(data) == ackedVal
		for _, v := range since {
			ok = ok || string(data) == v
		}
		if !ok {
			t.Fatalf("ref holds %q; want the last acknowledged value %q or one attempted after it %v", data, ackedVal, since)
		}
		if ackedVal == string(data) && etag != "" && tag != etag {
			t.Fatalf("ref etag %q, want the acknowledged %q", tag, etag)
		}
		// The CAS still means something: a stale etag loses.
		if _, err := b.PutIf(ctx, key, []byte("stale"), `"stale-etag"`); !errors.Is(err, backends.ErrPrecondition) {
			t.Fatalf("PutIf with a wrong etag after the faults = %v, want ErrPrecondition", err)
		}
	})

	t.Run("RetriesBounded", func(t *testing.T) {
		p.SetConfig(fault.Config{Error5xx: 1})
		before := p.Stats().Requests
		start := time.Now()
		err := b.Put(ctx, ns+"never", bytes.NewReader([]byte("x")), 1)
		d := time.Since(start)
		n := p.Stats().Requests - before
		p.SetConfig(fault.Config{})
		if err == nil {
			t.Fatal("Put succeeded with every request failing")
		}
		if backends.IsPermanent(err) || !strings.Contains(err.Error(), "attempts") {
			t.Errorf("Put error %q does not say that it gave up after retrying", err)
		}
		if n < 2 || n > 10 || d > 30*time.Second {
			t.Errorf("with every request failing, Put made %d requests in %v; want a few (bounded) retries", n, d)
		}
		t.Logf("gave up after %d requests in %v: %v", n, d.Round(time.Millisecond), err)
	})
}
