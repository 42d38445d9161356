package backends

import (
	"context"
	"io"
	"sync"
)

// NewLimit wraps b so that at most b.Properties().Connections operations run at once (at
// least 1). A Get holds its slot until the reader is closed, so close readers promptly.
// List holds no slot: fn may call back into the backend.
func NewLimit(b Backend) Backend {
	n := b.Properties().Connections
	if n <= 0 {
		n = 1
	}
	return &limit{b: b, sem: make(chan struct{}, n)}
}

type limit struct {
	b   Backend
	sem chan struct{}
}

func (l *limit) acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case l.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *limit) release() { <-l.sem }

func (l *limit) Put(ctx context.Context, key string, r io.ReadSeeker, size int64) error {
	if err := l.acquire(ctx); err != nil {
		return err
	}
	defer l.release()
	return l.b.Put(ctx, key, r, size)
}

func (l *limit) Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if err := l.acquire(ctx); err != nil {
		return nil, err
	}
	rc, err := l.b.Get(ctx, key, off, length)
	if err != nil {
		l.release()
		return nil, err
	}
	return &limitReader{ReadCloser: rc, release: l.release}, nil
}

type limitReader struct {
	io.ReadCloser
	once    sync.Once
	release func()
}

func (r *limitReader) Len() int64 {
	if l, ok := r.ReadCloser.(remaining); ok {
		return l.Len()
	}
	return -1
}

func (r *limitReader) Close() error {
	err := r.ReadCloser.Close()
	r.once.Do(r.release)
	return err
}

func (l *limit) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := l.acquire(ctx); err != nil {
		return ObjectInfo{}, err
	}
	defer l.release()
	return l.b.Stat(ctx, key)
}

func (l *limit) Delete(ctx context.Context, key string) error {
	if err := l.acquire(ctx); err != nil {
		return err
	}
	defer l.release()
	return l.b.Delete(ctx, key)
}

func (l *limit) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	return l.b.List(ctx, prefix, fn)
}

func (l *limit) PutIf(ctx context.Context, key string, data []byte, ifMatch string) (string, error) {
	if err := l.acquire(ctx); err != nil {
		return "", err
	}
	defer l.release()
	return l.b.PutIf(ctx, key, data, ifMatch)
}

func (l *limit) GetWithETag(ctx context.Context, key string) ([]byte, string, error) {
	if err := l.acquire(ctx); err != nil {
		return nil, "", err
	}
	defer l.release()
	return l.b.GetWithETag(ctx, key)
}

func (l *limit) Properties() Properties { return l.b.Properties() }
func (l *limit) Close() error           { return l.b.Close() }
