package backends_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentfs/agentfs/backends"
	_ "github.com/agentfs/agentfs/backends/all"
	"github.com/agentfs/agentfs/backends/file"
)

// flaky wraps a real backend and injects failures into the wrapper's view of it.
type flaky struct {
	backends.Backend
	calls          atomic.Int64
	loseResponses  int // PutIf: apply, then report a transient error, this many times
	failGets       int // Get: transient error this many times
	cutReads       int // Get readers: fail after 10 bytes this many times
	inFlight, peak atomic.Int64
}

var errTransient = errors.New("connection reset (injected)")

func (f *flaky) PutIf(ctx context.Context, key string, data []byte, ifMatch string) (string, error) {
	f.calls.Add(1)
	etag, err := f.Backend.PutIf(ctx, key, data, ifMatch)
	if err == nil && f.loseResponses > 0 {
		f.loseResponses--
		return "", errTransient
	}
	return etag, err
}

func (f *flaky) Stat(ctx context.Context, key string) (backends.ObjectInfo, error) {
	f.calls.Add(1)
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for {
		p := f.peak.Load()
		if n <= p || f.peak.CompareAndSwap(p, n) {
			break
		}
	}
	time.Sleep(5 * time.Millisecond)
	return f.Backend.Stat(ctx, key)
}

type cutReader struct {
	io.ReadCloser
	n int
}

func (c *cutReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, errTransient
	}
	if len(p) > c.n {
		p = p[:c.n]
	}
	n, err := c.ReadCloser.Read(p)
	c.n -= n
	return n, err
}

func (f *flaky) Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	f.calls.Add(1)
	if f.failGets > 0 {
		f.failGets--
		return nil, errTransient
	}
	rc, err := f.Backend.Get(ctx, key, off, length)
	if err == nil && f.cutReads > 0 {
		f.cutReads--
		return &cutReader{rc, 10}, nil
	}
	return rc, err
}

func newFlaky(t *testing.T) *flaky {
	fb, err := file.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &flaky{Backend: fb}
}

var fast = backends.RetryPolicy{Attempts: 4, Base: time.Millisecond, Max: 5 * time.Millisecond}

func TestRetryAmbiguousPutIf(t *testing.T) {
	f := newFlaky(t)
	b := backends.NewRetry(f, fast)
	ctx := context.Background()
	f.loseResponses = 1
	etag, err := b.PutIf(ctx, "refs/main", []byte("v1"), "")
	if err != nil {
		t.Fatalf("create-only PutIf whose first response was lost: %v (want success: the write was ours)", err)
	}
	f.loseResponses = 1
	if _, err := b.PutIf(ctx, "refs/main", []byte("v2"), etag); err != nil {
		t.Fatalf("CAS PutIf whose first response was lost: %v", err)
	}
	// A real conflict is still a conflict.
	if _, err := b.PutIf(ctx, "refs/main", []byte("v3"), etag); !errors.Is(err, backends.ErrPrecondition) {
		t.Fatalf("stale CAS = %v, want ErrPrecondition", err)
	}
}

func TestRetryPermanentNotRetried(t *testing.T) {
	f := newFlaky(t)
	b := backends.NewRetry(f, fast)
	_, err := b.Get(context.Background(), "missing", 0, -1)
	if !errors.Is(err, backends.ErrNotExist) || f.calls.Load() != 1 {
		t.Fatalf("Get(missing) = %v after %d calls; want ErrNotExist after 1", err, f.calls.Load())
	}
}

func TestRetryBoundedAndResumes(t *testing.T) {
	f := newFlaky(t)
	b := backends.NewRetry(f, fast)
	ctx := context.Background()
	data := bytes.Repeat([]byte("0123456789abcdef"), 1000)
	if err := b.Put(ctx, "obj", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	f.failGets = 100
	f.calls.Store(0)
	_, err := b.Get(ctx, "obj", 0, -1)
	if err == nil || f.calls.Load() != int64(fast.Attempts) || !strings.Contains(err.Error(), "giving up after 4 attempts") {
		t.Fatalf("Get with every attempt failing = %v after %d calls; want a giving-up error after %d", err, f.calls.Load(), fast.Attempts)
	}
	f.failGets = 0
	f.cutReads = 2 // the reader dies twice mid-body; the wrapper resumes where it stopped
	rc, err := b.Get(ctx, "obj", 5, 5000)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data[5:5005]) {
		t.Fatalf("resumed read: %d bytes, %v; want the 5000 right bytes", len(got), err)
	}
}

func TestLimit(t *testing.T) {
	f := newFlaky(t)
	b := backends.NewLimit(f) // file backend: 8 connections
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = b.Stat(context.Background(), "x")
		}()
	}
	wg.Wait()
	if p := f.peak.Load(); p > int64(b.Properties().Connections) || p < 2 {
		t.Fatalf("peak concurrency %d with Connections=%d", p, b.Properties().Connections)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Stat(ctx, "x"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stat with a canceled ctx = %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	for _, u := range []string{"nosuch://x", "/just/a/path", "file:///tmp/x?connections=abc", "%%"} {
		_, err := backends.Open(context.Background(), u)
		if err == nil {
			t.Errorf("Open(%q) succeeded", u)
			continue
		}
		t.Logf("%s: %v", u, err)
	}
	b, err := backends.Open(context.Background(), "file://"+t.TempDir()+"?connections=3")
	if err != nil {
		t.Fatal(err)
	}
	if c := b.Properties().Connections; c != 3 {
		t.Fatalf("connections=3 gave %d", c)
	}
}
