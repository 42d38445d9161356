// Package backends stores immutable objects in object storage (S3, GCS, Azure Blob) or a local
// directory, behind one small interface.
//
// Providers live in their own packages (backends/s3, backends/gcs, backends/azure,
// backends/file) and register a URL scheme with Register from their init functions; Open looks
// the scheme up, so backends itself imports no SDK. Programs import backends/all (or only the
// providers they want) for the side effect:
//
//	import _ "github.com/agentfs/agentfs/backends/all"
//	b, err := backends.Open(ctx, "s3://bucket/repo?region=eu-west-1")
//
// Open wraps every provider in the same two layers: a concurrency limit
// (Properties.Connections) and bounded retries with exponential backoff and jitter. Provider
// SDK retries are switched off so that the number of attempts is the one stated here.
package backends

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

var (
	// ErrNotExist: the object (or the bucket/container) does not exist.
	ErrNotExist = errors.New("backends: object does not exist")
	// ErrPrecondition: a conditional write (PutIf) lost: the key exists (create-only) or its
	// ETag is no longer the one given (412, Azure 409 BlobAlreadyExists, GCS 412).
	ErrPrecondition = errors.New("backends: precondition failed")
	// ErrPermission: the provider refused the credentials or the operation (401/403).
	ErrPermission = errors.New("backends: access denied")
)

// ObjectInfo describes one stored object. Key is relative to the backend's prefix.
type ObjectInfo struct {
	Key     string
	Size    int64
	ETag    string // opaque; pass it to PutIf as ifMatch
	ModTime time.Time
}

// Properties describes a backend to the layers above it.
type Properties struct {
	Name           string // e.g. "s3://bucket/prefix"
	Connections    int    // how many operations may run at once (the limiter's size)
	ListAfterWrite bool   // a listing started after Put returned includes the object
}

// Backend stores immutable objects under opaque keys (relative to the URL's prefix). Readers
// never see a partial object. All methods are safe for concurrent use and return promptly
// once ctx is done. Provider errors are wrapped with %w around ErrNotExist, ErrPrecondition
// and ErrPermission where they apply.
//
// Keys are slash-separated relative paths: not empty, no leading or trailing slash, no empty,
// "." or ".." components, and no component starting with ".agentfs-" (reserved).
type Backend interface {
	// Put stores size bytes read from r under key, replacing any object there. r may be
	// re-read (sought back to where it was when Put was called) on retry. Large objects use
	// multipart/block uploads; the object appears whole or not at all.
	Put(ctx context.Context, key string, r io.ReadSeeker, size int64) error
	// Get reads length bytes from off (length < 0: to the end). The reader returns exactly
	// that many bytes or an error (io.ErrUnexpectedEOF), never a short read. Reading past the
	// end of the object is an error.
	Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error)
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// Delete removes key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// List calls fn for every object whose key starts with prefix, in lexical order of key.
	// An error from fn stops the listing and is returned.
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error
	// PutIf is a conditional write, used for branch refs so that two hosts never silently
	// overwrite each other: ifMatch == "" means create-only (ErrPrecondition if the key
	// exists); otherwise replace only if the current ETag equals ifMatch. Returns the new ETag.
	PutIf(ctx context.Context, key string, data []byte, ifMatch string) (etag string, err error)
	// GetWithETag reads a small object whole and returns its ETag for a later PutIf.
	GetWithETag(ctx context.Context, key string) (data []byte, etag string, err error)
	Properties() Properties
	Close() error
}

// OpenFunc opens a provider for a parsed URL. Query parameters that Open itself handles
// (connections, retries) have been removed; providers reject parameters they do not know.
type OpenFunc func(ctx context.Context, u *url.URL) (Backend, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]OpenFunc{}
)

// Register makes a provider available to Open under a URL scheme. It panics if the scheme
// is registered twice. Providers call it from init.
func Register(scheme string, open OpenFunc) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[scheme]; dup {
		panic("backends: scheme registered twice: " + scheme)
	}
	registry[scheme] = open
}

func schemes() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	var s []string
	for k := range registry {
		s = append(s, k+"://")
	}
	sort.Strings(s)
	return s
}

// ErrBadURL matches the errors Open returns for a URL it cannot use (a caller's mistake).
var ErrBadURL = errors.New("bad remote URL")

type urlError struct{ error }

func (e urlError) Is(target error) bool { return target == ErrBadURL }
func (e urlError) Unwrap() error        { return e.error }

// Open parses rawURL and returns the provider's backend wrapped in a concurrency limiter and
// bounded retries. Besides the provider's own parameters, it accepts:
//
//	connections=N  concurrent operations (default: the provider's Properties().Connections)
//	retries=N      attempts per operation, including the first (default 5)
//
// Schemes (each needs its provider package imported, see backends/all):
//
//	s3://bucket/prefix?region=us-east-1&endpoint=http://127.0.0.1:9000&path_style=true
//	gs://bucket/prefix
//	az://account/container/prefix?endpoint=http://127.0.0.1:10000/devstoreaccount1
//	file:///path
func Open(ctx context.Context, rawURL string) (Backend, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, urlError{fmt.Errorf("bad storage URL %q: %w", rawURL, err)}
	}
	if u.Scheme == "" {
		return nil, urlError{fmt.Errorf("storage URL %q has no scheme; use one of %s", rawURL, strings.Join(schemes(), ", "))}
	}
	registryMu.RLock()
	open := registry[u.Scheme]
	registryMu.RUnlock()
	if open == nil {
		return nil, urlError{fmt.Errorf("unknown storage URL scheme %q in %q; use one of %s (docs/cli.md, remote add)",
			u.Scheme+"://", rawURL, strings.Join(schemes(), ", "))}
	}
	q := u.Query()
	conns, err := intParam(q, "connections")
	if err != nil {
		return nil, urlError{err}
	}
	attempts, err := intParam(q, "retries")
	if err != nil {
		return nil, urlError{err}
	}
	q.Del("connections")
	q.Del("retries")
	u.RawQuery = q.Encode()
	b, err := open(ctx, u)
	if err != nil {
		return nil, err
	}
	if conns > 0 {
		b = withConnections{b, conns}
	}
	return NewRetry(NewLimit(b), RetryPolicy{Attempts: attempts}), nil
}

func intParam(q url.Values, name string) (int, error) {
	v := q.Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("storage URL parameter %s=%q: want a positive integer", name, v)
	}
	return n, nil
}

type withConnections struct {
	Backend
	n int
}

func (w withConnections) Properties() Properties {
	p := w.Backend.Properties()
	p.Connections = w.n
	return p
}

// permanentError marks an error that retrying cannot fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err so that the retry wrapper does not retry it (bad arguments, a bad
// configuration). ErrNotExist, ErrPrecondition, ErrPermission and context errors are
// permanent without it.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether retrying err is pointless.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p) ||
		errors.Is(err, ErrNotExist) || errors.Is(err, ErrPrecondition) || errors.Is(err, ErrPermission) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// CheckKey reports whether key is a valid object key (see Backend).
func CheckKey(key string) error {
	if key == "" {
		return Permanent(errors.New("backends: empty key"))
	}
	for _, c := range strings.Split(key, "/") {
		if c == "" || c == "." || c == ".." || strings.HasPrefix(c, ".agentfs-") {
			return Permanent(fmt.Errorf("backends: invalid key %q (empty, '.', '..' or reserved '.agentfs-' component)", key))
		}
	}
	return nil
}

// ObjectName joins a URL's prefix and a key into the provider's object name ("" prefix: the
// key itself). An empty key gives the prefix as a listing prefix ("prefix/").
func ObjectName(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "/" + key
}

// CheckedName is ObjectName for a key that must be valid (CheckKey).
func CheckedName(prefix, key string) (string, error) {
	if err := CheckKey(key); err != nil {
		return "", err
	}
	return ObjectName(prefix, key), nil
}

// Where names an object in messages: the backend's name, then the key if there is one.
func Where(name, key string) string {
	if key == "" {
		return name
	}
	return name + "/" + key
}

// CheckRange validates a Get range against an object of the given size and returns how many
// bytes the reader must deliver.
func CheckRange(key string, off, length, size int64) (int64, error) {
	if off < 0 {
		return 0, Permanent(fmt.Errorf("backends: get %q: negative offset %d", key, off))
	}
	if length < 0 {
		length = size - off
	}
	if off+length > size || length < 0 {
		return 0, Permanent(fmt.Errorf("backends: get %q: range [%d, %d) is past the end of the object (size %d)", key, off, off+length, size))
	}
	return length, nil
}

// ExactReader returns rc limited to n bytes that fails with io.ErrUnexpectedEOF when rc ends
// before n bytes. Providers wrap their response bodies with it.
func ExactReader(rc io.ReadCloser, n int64) io.ReadCloser {
	return &exactReader{rc: rc, n: n}
}

type exactReader struct {
	rc io.ReadCloser
	n  int64
}

func (r *exactReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.n {
		p = p[:r.n]
	}
	n, err := r.rc.Read(p)
	r.n -= int64(n)
	if err == io.EOF {
		if r.n > 0 {
			return n, io.ErrUnexpectedEOF
		}
		return n, nil
	}
	if r.n == 0 && err == nil && n > 0 {
		return n, nil
	}
	return n, err
}

func (r *exactReader) Close() error { return r.rc.Close() }

// Len reports how many bytes are left to read; the retry wrapper uses it to resume reads.
func (r *exactReader) Len() int64 { return r.n }

// remaining is implemented by readers that know how many bytes they still have to deliver.
type remaining interface{ Len() int64 }
