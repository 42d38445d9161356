// Package backendtest is the conformance suite every backends.Backend must pass, plus helpers
// that start the real object storage servers the provider tests run against.
package backendtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/agentfs/agentfs/backends"
)

// Options tunes Run for slow or limited servers.
type Options struct {
	LargeSize int64 // size of the large-object test; default 20 MiB (multipart/block path)
	Racers    int   // goroutines in the PutIf races; default 16
}

// Run runs the conformance suite against b. All keys live under a fresh random prefix, so
// Run may share a bucket with other tests; it deletes what it wrote.
func Run(t *testing.T, b backends.Backend) { RunWithOptions(t, b, Options{}) }

// RunWithOptions is Run with options.
func RunWithOptions(t *testing.T, b backends.Backend, o Options) {
	if o.LargeSize == 0 {
		o.LargeSize = 20 << 20
	}
	if o.Racers == 0 {
		o.Racers = 16
	}
	ns := "conformance-" + randHex(6) + "/"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	t.Cleanup(func() {
		_ = b.List(context.Background(), ns, func(oi backends.ObjectInfo) error {
			return b.Delete(context.Background(), oi.Key)
		})
	})
	s := &suite{b: b, ns: ns, ctx: ctx, o: o}
	t.Run("Properties", s.properties)
	t.Run("PutGet", s.putGet)
	t.Run("EmptyObject", s.emptyObject)
	t.Run("Overwrite", s.overwrite)
	t.Run("RangedGet", s.rangedGet)
	t.Run("Stat", s.stat)
	t.Run("NotExist", s.notExist)
	t.Run("InvalidKeys", s.invalidKeys)
	t.Run("List", s.list)
	t.Run("Delete", s.delete)
	t.Run("Large", s.large)
	t.Run("ConcurrentPutGet", s.concurrentPutGet)
	t.Run("PutIfCreate", s.putIfCreate)
	t.Run("PutIfCAS", s.putIfCAS)
	t.Run("PutIfRaceCreate", s.putIfRaceCreate)
	t.Run("PutIfRaceCAS", s.putIfRaceCAS)
	t.Run("CanceledContext", s.canceled)
}

type suite struct {
	b   backends.Backend
	ns  string
	ctx context.Context
	o   Options
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// RandomBytes returns n pseudo-random bytes (deterministic for a seed).
func RandomBytes(seed uint64, n int) []byte {
	r := mrand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)})
	b := make([]byte, n)
	_, _ = r.Read(b)
	return b
}

func (s *suite) key(name string) string { return s.ns + name }

func (s *suite) put(t *testing.T, key string, data []byte) {
	t.Helper()
	if err := s.b.Put(s.ctx, key, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put(%q, %d bytes): %v", key, len(data), err)
	}
}

func (s *suite) get(t *testing.T, key string, off, length int64) []byte {
	t.Helper()
	rc, err := s.b.Get(s.ctx, key, off, length)
	if err != nil {
		t.Fatalf("Get(%q, %d, %d): %v", key, off, length, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%q, %d, %d): reading: %v", key, off, length, err)
	}
	return data
}

// CheckEqual fails t unless got equals want, describing the first difference.
func CheckEqual(t testing.TB, what string, got, want []byte) {
	t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	t.Fatalf("%s: got %d bytes, want %d; first difference at byte %d", what, len(got), len(want), i)
}

func (s *suite) properties(t *testing.T) {
	p := s.b.Properties()
	if p.Name == "" || p.Connections <= 0 {
		t.Fatalf("Properties() = %+v: want a name and Connections > 0", p)
	}
}

func (s *suite) putGet(t *testing.T) {
	data := RandomBytes(1, 100_000)
	k := s.key("putget/obj")
	s.put(t, k, data)
	CheckEqual(t, "Get whole", s.get(t, k, 0, -1), data)
}

func (s *suite) emptyObject(t *testing.T) {
	k := s.key("empty")
	s.put(t, k, nil)
	if got := s.get(t, k, 0, -1); len(got) != 0 {
		t.Fatalf("empty object read back as %d bytes", len(got))
	}
	info, err := s.b.Stat(s.ctx, k)
	if err != nil || info.Size != 0 {
		t.Fatalf("Stat(empty) = %+v, %v", info, err)
	}
}

func (s *suite) overwrite(t *testing.T) {
	k := s.key("overwrite")
	s.put(t, k, []byte("first version"))
	s.put(t, k, []byte("second"))
	CheckEqual(t, "after overwrite", s.get(t, k, 0, -1), []byte("second"))
}

func (s *suite) rangedGet(t *testing.T) {
	data := RandomBytes(2, 10_000)
	k := s.key("ranged")
	s.put(t, k, data)
	for _, c := range []struct{ off, length int64 }{
		{0, 1}, {0, 10_000}, {1, 9_999}, {5000, 100}, {9_999, 1}, {9_999, -1}, {1234, -1}, {10_000, -1}, {300, 0},
	} {
		want := data[c.off:]
		if c.length >= 0 {
			want = data[c.off : c.off+c.length]
		}
		CheckEqual(t, fmt.Sprintf("Get(off=%d, len=%d)", c.off, c.length), s.get(t, k, c.off, c.length), want)
	}
	// Past the end: an error, at Get or at read time, never a short read.
	for _, c := range []struct{ off, length int64 }{{9_990, 20}, {10_001, -1}, {20_000, 5}} {
		rc, err := s.b.Get(s.ctx, k, c.off, c.length)
		if err != nil {
			continue
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err == nil {
			t.Errorf("Get(off=%d, len=%d) past the end of a %d-byte object returned %d bytes and no error", c.off, c.length, len(data), len(got))
		}
	}
}

func (s *suite) stat(t *testing.T) {
	data := RandomBytes(3, 4321)
	k := s.key("stat")
	before := time.Now().Add(-time.Hour)
	s.put(t, k, data)
	info, err := s.b.Stat(s.ctx, k)
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if info.Key != k || info.Size != int64(len(data)) || info.ETag == "" {
		t.Fatalf("Stat = %+v: want key %q, size %d, an ETag", info, k, len(data))
	}
	if info.ModTime.Before(before) || info.ModTime.After(time.Now().Add(time.Hour)) {
		t.Fatalf("Stat ModTime = %v, not near now", info.ModTime)
	}
	_, etag, err := s.b.GetWithETag(s.ctx, k)
	if err != nil {
		t.Fatalf("GetWithETag: %v", err)
	}
	if etag != info.ETag {
		t.Fatalf("Stat ETag %q != GetWithETag ETag %q", info.ETag, etag)
	}
}

func (s *suite) notExist(t *testing.T) {
	k := s.key("does/not/exist")
	if _, err := s.b.Stat(s.ctx, k); !errors.Is(err, backends.ErrNotExist) {
		t.Errorf("Stat(missing) = %v, want ErrNotExist", err)
	}
	if rc, err := s.b.Get(s.ctx, k, 0, -1); !errors.Is(err, backends.ErrNotExist) {
		if rc != nil {
			rc.Close()
		}
		t.Errorf("Get(missing) = %v, want ErrNotExist", err)
	}
	if rc, err := s.b.Get(s.ctx, k, 10, 5); !errors.Is(err, backends.ErrNotExist) {
		if rc != nil {
			rc.Close()
		}
		t.Errorf("Get(missing, range) = %v, want ErrNotExist", err)
	}
	if _, _, err := s.b.GetWithETag(s.ctx, k); !errors.Is(err, backends.ErrNotExist) {
		t.Errorf("GetWithETag(missing) = %v, want ErrNotExist", err)
	}
	if err := s.b.Delete(s.ctx, k); err != nil {
		t.Errorf("Delete(missing) = %v, want nil", err)
	}
	n := 0
	if err := s.b.List(s.ctx, s.key("does/not/"), func(backends.ObjectInfo) error { n++; return nil }); err != nil || n != 0 {
		t.Errorf("List(missing prefix) = %d objects, %v; want 0, nil", n, err)
	}
}

func (s *suite) invalidKeys(t *testing.T) {
	for _, k := range []string{"", "/abs", "a//b", "a/../b", "trailing/", ".agentfs-tmp-x"} {
		if err := s.b.Put(s.ctx, k, bytes.NewReader([]byte("x")), 1); err == nil {
			t.Errorf("Put(%q) succeeded, want an error", k)
			_ = s.b.Delete(s.ctx, k)
		}
	}
}

func (s *suite) list(t *testing.T) {
	keys := []string{"list/a", "list/b/1", "list/b/2", "list/b-c", "list/c/d/e", "listx"}
	for i, k := range keys {
		s.put(t, s.key(k), RandomBytes(uint64(10+i), i+1))
	}
	collect := func(prefix string) []backends.ObjectInfo {
		var got []backends.ObjectInfo
		if err := s.b.List(s.ctx, s.key(prefix), func(oi backends.ObjectInfo) error {
			got = append(got, oi)
			return nil
		}); err != nil {
			t.Fatalf("List(%q): %v", prefix, err)
		}
		return got
	}
	check := func(prefix string, want ...string) {
		t.Helper()
		got := collect(prefix)
		var names []string
		for _, oi := range got {
			names = append(names, oi.Key)
		}
		var full []string
		for _, w := range want {
			full = append(full, s.key(w))
		}
		sort.Strings(full)
		if fmt.Sprint(names) != fmt.Sprint(full) {
			t.Fatalf("List(%q) = %v, want %v (in key order)", prefix, names, full)
		}
	}
	check("list/", "list/a", "list/b/1", "list/b/2", "list/b-c", "list/c/d/e")
	check("list", "list/a", "list/b/1", "list/b/2", "list/b-c", "list/c/d/e", "listx")
	check("list/b", "list/b/1", "list/b/2", "list/b-c")
	check("list/b/", "list/b/1", "list/b/2")
	check("list/c/d/e", "list/c/d/e")
	for _, oi := range collect("list/b/") {
		want := map[string]int64{s.key("list/b/1"): 2, s.key("list/b/2"): 3}[oi.Key]
		if oi.Size != want {
			t.Errorf("List size of %q = %d, want %d", oi.Key, oi.Size, want)
		}
	}
	// An error from fn stops the listing and comes back unchanged.
	stop := errors.New("stop here")
	calls := 0
	err := s.b.List(s.ctx, s.key("list/"), func(backends.ObjectInfo) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("List with failing fn: err=%v after %d calls, want the fn error after 1 call", err, calls)
	}
}

func (s *suite) delete(t *testing.T) {
	k := s.key("delete/me")
	s.put(t, k, []byte("bye"))
	for i := 0; i < 2; i++ {
		if err := s.b.Delete(s.ctx, k); err != nil {
			t.Fatalf("Delete #%d: %v", i+1, err)
		}
	}
	if _, err := s.b.Stat(s.ctx, k); !errors.Is(err, backends.ErrNotExist) {
		t.Fatalf("Stat after Delete = %v, want ErrNotExist", err)
	}
	n := 0
	_ = s.b.List(s.ctx, s.key("delete/"), func(backends.ObjectInfo) error { n++; return nil })
	if n != 0 {
		t.Fatalf("List after Delete found %d objects", n)
	}
}

func (s *suite) large(t *testing.T) {
	data := RandomBytes(4, int(s.o.LargeSize))
	k := s.key("large")
	s.put(t, k, data)
	info, err := s.b.Stat(s.ctx, k)
	if err != nil || info.Size != s.o.LargeSize {
		t.Fatalf("Stat(large) = %+v, %v; want size %d", info, err, s.o.LargeSize)
	}
	CheckEqual(t, "large whole", s.get(t, k, 0, -1), data)
	off := s.o.LargeSize/2 - 1000
	CheckEqual(t, "large middle", s.get(t, k, off, 3<<20), data[off:off+3<<20])
	CheckEqual(t, "large tail", s.get(t, k, s.o.LargeSize-10, -1), data[s.o.LargeSize-10:])
	// Put rewinds: a reader that is not at its start is uploaded from where it is.
	r := bytes.NewReader(data)
	_, _ = r.Seek(s.o.LargeSize-1000, io.SeekStart)
	if err := s.b.Put(s.ctx, s.key("large-tail"), r, 1000); err != nil {
		t.Fatalf("Put from a mid-stream reader: %v", err)
	}
	CheckEqual(t, "mid-stream put", s.get(t, s.key("large-tail"), 0, -1), data[s.o.LargeSize-1000:])
}

func (s *suite) concurrentPutGet(t *testing.T) {
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := RandomBytes(uint64(100+i), 50_000+i)
			k := s.key(fmt.Sprintf("concurrent/%02d", i))
			if err := s.b.Put(s.ctx, k, bytes.NewReader(data), int64(len(data))); err != nil {
				errs <- err
				return
			}
			rc, err := s.b.Get(s.ctx, k, 0, -1)
			if err != nil {
				errs <- err
				return
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				errs <- err
			} else if !bytes.Equal(got, data) {
				errs <- fmt.Errorf("%s: read back different bytes", k)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func (s *suite) putIfCreate(t *testing.T) {
	k := s.key("refs/create")
	etag, err := s.b.PutIf(s.ctx, k, []byte("v1"), "")
	if err != nil || etag == "" {
		t.Fatalf("PutIf create-only on a new key = %q, %v", etag, err)
	}
	if _, err := s.b.PutIf(s.ctx, k, []byte("v2"), ""); !errors.Is(err, backends.ErrPrecondition) {
		t.Fatalf("second create-only PutIf = %v, want ErrPrecondition", err)
	}
	data, got, err := s.b.GetWithETag(s.ctx, k)
	if err != nil || string(data) != "v1" || got != etag {
		t.Fatalf("GetWithETag = %q, %q, %v; want v1, %q", data, got, err, etag)
	}
	// Create-only also loses against an object written by a plain Put.
	k2 := s.key("refs/create-after-put")
	s.put(t, k2, []byte("plain"))
	if _, err := s.b.PutIf(s.ctx, k2, []byte("x"), ""); !errors.Is(err, backends.ErrPrecondition) {
		t.Fatalf("create-only PutIf over a Put object = %v, want ErrPrecondition", err)
	}
}

func (s *suite) putIfCAS(t *testing.T) {
	k := s.key("refs/cas")
	e1, err := s.b.PutIf(s.ctx, k, []byte("v1"), "")
	if err != nil {
		t.Fatal(err)
	}
	e2, err := s.b.PutIf(s.ctx, k, []byte("v2"), e1)
	if err != nil {
		t.Fatalf("CAS with the current etag: %v", err)
	}
	if e2 == e1 {
		t.Fatalf("CAS returned the old etag %q", e2)
	}
	if _, err := s.b.PutIf(s.ctx, k, []byte("v3"), e1); !errors.Is(err, backends.ErrPrecondition) {
		t.Fatalf("CAS with a stale etag = %v, want ErrPrecondition", err)
	}
	data, e, err := s.b.GetWithETag(s.ctx, k)
	if err != nil || string(data) != "v2" || e != e2 {
		t.Fatalf("GetWithETag = %q, %q, %v; want v2, %q", data, e, err, e2)
	}
	// CAS on a key that does not exist fails.
	if _, err := s.b.PutIf(s.ctx, s.key("refs/cas-missing"), []byte("x"), e1); !errors.Is(err, backends.ErrPrecondition) && !errors.Is(err, backends.ErrNotExist) {
		t.Fatalf("CAS on a missing key = %v, want ErrPrecondition or ErrNotExist", err)
	}
	// A deleted ref can be created again.
	if err := s.b.Delete(s.ctx, k); err != nil {
		t.Fatal(err)
	}
	if _, err := s.b.PutIf(s.ctx, k, []byte("again"), ""); err != nil {
		t.Fatalf("create-only after Delete: %v", err)
	}
}

// race runs n PutIf calls at once on key with distinct data and checks that exactly one won.
func (s *suite) race(t *testing.T, key, ifMatch string) {
	n := s.o.Racers
	var wg sync.WaitGroup
	start := make(chan struct{})
	etags := make([]string, n)
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			etags[i], errs[i] = s.b.PutIf(s.ctx, key, []byte(fmt.Sprintf("racer %d", i)), ifMatch)
		}()
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("racers %d and %d both won PutIf(ifMatch=%q)", winner, i, ifMatch)
			}
			winner = i
		case !errors.Is(err, backends.ErrPrecondition):
			t.Errorf("racer %d: %v, want ErrPrecondition", i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("no racer won PutIf(ifMatch=%q)", ifMatch)
	}
	data, etag, err := s.b.GetWithETag(s.ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("racer %d", winner); string(data) != want || etag != etags[winner] {
		t.Fatalf("after the race the ref holds %q (etag %q), want the winner's %q (etag %q)", data, etag, want, etags[winner])
	}
}

func (s *suite) putIfRaceCreate(t *testing.T) { s.race(t, s.key("refs/race-create"), "") }

func (s *suite) putIfRaceCAS(t *testing.T) {
	k := s.key("refs/race-cas")
	etag, err := s.b.PutIf(s.ctx, k, []byte("base"), "")
	if err != nil {
		t.Fatal(err)
	}
	s.race(t, k, etag)
}

func (s *suite) canceled(t *testing.T) {
	ctx, cancel := context.WithCancel(s.ctx)
	cancel()
	k := s.key("canceled")
	startT := time.Now()
	if err := s.b.Put(ctx, k, bytes.NewReader([]byte("x")), 1); err == nil {
		t.Errorf("Put with a canceled context succeeded")
	}
	if _, err := s.b.Stat(ctx, k); !errors.Is(err, context.Canceled) {
		t.Errorf("Stat with a canceled context = %v, want context.Canceled", err)
	}
	if d := time.Since(startT); d > 5*time.Second {
		t.Errorf("canceled calls took %v", d)
	}
}
