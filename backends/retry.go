package backends

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"
)

// RetryPolicy bounds the retry wrapper. Zero fields take the defaults.
type RetryPolicy struct {
	Attempts int           // attempts per operation including the first; default 5
	Base     time.Duration // first backoff; default 100ms, doubled each attempt
	Max      time.Duration // backoff cap; default 5s
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.Attempts <= 0 {
		p.Attempts = 5
	}
	if p.Base <= 0 {
		p.Base = 100 * time.Millisecond
	}
	if p.Max <= 0 {
		p.Max = 5 * time.Second
	}
	return p
}

// NewRetry wraps b so that transient failures are retried with exponential backoff and full
// jitter, at most p.Attempts times per operation. Errors for which IsPermanent is true are
// returned at once. The final error says how many attempts were made.
//
// Get readers resume after a failure mid-body by reading the rest from where they stopped
// (objects are immutable). A PutIf retried after an ambiguous failure (the request may have
// been applied but the response lost) that then reports ErrPrecondition reads the object back:
// if it holds exactly our data, the earlier attempt won and PutIf succeeds.
func NewRetry(b Backend, p RetryPolicy) Backend {
	return &retry{b: b, p: p.withDefaults()}
}

type retry struct {
	b Backend
	p RetryPolicy
}

func (r *retry) backoff(ctx context.Context, attempt int) error {
	d := r.p.Base << min(attempt, 20)
	if d > r.p.Max || d <= 0 {
		d = r.p.Max
	}
	d = time.Duration(rand.Int64N(int64(d)) + 1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// do runs op until it succeeds, fails permanently, or the attempts are used up.
func (r *retry) do(ctx context.Context, what string, op func(attempt int) error) error {
	var err error
	for attempt := 0; attempt < r.p.Attempts; attempt++ {
		if attempt > 0 {
			if berr := r.backoff(ctx, attempt-1); berr != nil {
				return fmt.Errorf("%s: %w (after %d attempts, last error: %v)", what, berr, attempt, err)
			}
		}
		err = op(attempt)
		if err == nil || IsPermanent(err) {
			return err
		}
		if ctx.Err() != nil {
			return err
		}
	}
	return fmt.Errorf("%s: giving up after %d attempts: %w", what, r.p.Attempts, err)
}

func (r *retry) Put(ctx context.Context, key string, rd io.ReadSeeker, size int64) error {
	start, err := rd.Seek(0, io.SeekCurrent)
	if err != nil {
		return Permanent(fmt.Errorf("backends: put %q: body is not seekable: %w", key, err))
	}
	return r.do(ctx, "put "+key, func(attempt int) error {
		if attempt > 0 {
			if _, err := rd.Seek(start, io.SeekStart); err != nil {
				return Permanent(fmt.Errorf("backends: put %q: rewinding body for retry: %w", key, err))
			}
		}
		return r.b.Put(ctx, key, rd, size)
	})
}

func (r *retry) Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	var rc io.ReadCloser
	err := r.do(ctx, "get "+key, func(int) error {
		var err error
		rc, err = r.b.Get(ctx, key, off, length)
		return err
	})
	if err != nil {
		return nil, err
	}
	if l, ok := rc.(remaining); ok && length < 0 {
		length = l.Len()
	}
	if length < 0 {
		// Resuming needs to know where the end is.
		info, err := r.Stat(ctx, key)
		if err != nil {
			rc.Close()
			return nil, err
		}
		length = info.Size - off
	}
	return &resumeReader{r: r, ctx: ctx, key: key, rc: rc, off: off, left: length}, nil
}

// resumeReader reopens the object at the current offset after a transient read error.
type resumeReader struct {
	r        *retry
	ctx      context.Context
	key      string
	rc       io.ReadCloser
	off      int64
	left     int64
	failures int
}

func (rr *resumeReader) Read(p []byte) (int, error) {
	if rr.left <= 0 {
		return 0, io.EOF
	}
	for {
		if rr.rc == nil {
			rc, err := rr.r.b.Get(rr.ctx, rr.key, rr.off, rr.left)
			if err != nil {
				if IsPermanent(err) || rr.failures >= rr.r.p.Attempts || rr.ctx.Err() != nil {
					return 0, fmt.Errorf("get %s: resuming at offset %d: %w", rr.key, rr.off, err)
				}
				rr.failures++
				if berr := rr.r.backoff(rr.ctx, rr.failures-1); berr != nil {
					return 0, berr
				}
				continue
			}
			rr.rc = rc
		}
		if int64(len(p)) > rr.left {
			p = p[:rr.left]
		}
		n, err := rr.rc.Read(p)
		rr.off += int64(n)
		rr.left -= int64(n)
		if err == io.EOF && rr.left > 0 {
			err = io.ErrUnexpectedEOF
		}
		if err == nil || err == io.EOF {
			return n, err
		}
		rr.rc.Close()
		rr.rc = nil
		rr.failures++
		if rr.failures >= rr.r.p.Attempts || rr.ctx.Err() != nil {
			return n, fmt.Errorf("get %s: giving up at offset %d after %d read failures: %w", rr.key, rr.off, rr.failures, err)
		}
		if n > 0 {
			return n, nil
		}
		if berr := rr.r.backoff(rr.ctx, rr.failures-1); berr != nil {
			return 0, berr
		}
	}
}

func (rr *resumeReader) Close() error {
	if rr.rc == nil {
		return nil
	}
	err := rr.rc.Close()
	rr.rc = nil
	return err
}

func (r *retry) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	var info ObjectInfo
	err := r.do(ctx, "stat "+key, func(int) error {
		var err error
		info, err = r.b.Stat(ctx, key)
		return err
	})
	return info, err
}

func (r *retry) Delete(ctx context.Context, key string) error {
	return r.do(ctx, "delete "+key, func(int) error { return r.b.Delete(ctx, key) })
}

func (r *retry) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	// Listings come in key order, so a retry skips what fn has already seen.
	var last string
	seen := false
	var fnErr error
	return r.do(ctx, "list "+prefix, func(int) error {
		err := r.b.List(ctx, prefix, func(oi ObjectInfo) error {
			if seen && oi.Key <= last {
				return nil
			}
			if err := fn(oi); err != nil {
				fnErr = err
				return err
			}
			last, seen = oi.Key, true
			return nil
		})
		if fnErr != nil {
			return Permanent(fnErr)
		}
		return err
	})
}

func (r *retry) PutIf(ctx context.Context, key string, data []byte, ifMatch string) (string, error) {
	var etag string
	ambiguous := false
	err := r.do(ctx, "putif "+key, func(int) error {
		var err error
		etag, err = r.b.PutIf(ctx, key, data, ifMatch)
		if errors.Is(err, ErrPrecondition) && ambiguous {
			// An earlier attempt may have been applied with its response lost.
			cur, curTag, gerr := r.b.GetWithETag(ctx, key)
			if gerr == nil && bytes.Equal(cur, data) {
				etag = curTag
				return nil
			}
		}
		if err != nil && !IsPermanent(err) {
			ambiguous = true
		}
		return err
	})
	return etag, err
}

func (r *retry) GetWithETag(ctx context.Context, key string) ([]byte, string, error) {
	var data []byte
	var etag string
	err := r.do(ctx, "get "+key, func(int) error {
		var err error
		data, etag, err = r.b.GetWithETag(ctx, key)
		return err
	})
	return data, etag, err
}

func (r *retry) Properties() Properties { return r.b.Properties() }
func (r *retry) Close() error           { return r.b.Close() }
