// Package gcs is the Google Cloud Storage backend: gs://bucket/prefix.
//
// Credentials are the application default credentials (GOOGLE_APPLICATION_CREDENTIALS,
// gcloud, the metadata server); STORAGE_EMULATOR_HOST points the client at an emulator
// (fake-gcs-server in the tests). ETags are object generations (decimal strings); PutIf uses
// the DoesNotExist and GenerationMatch preconditions. Objects up to 16 MiB are sent in one
// request without buffering; larger ones use a resumable upload in 16 MiB chunks. Both
// create the object atomically at the end. SDK retries are off: backends.Open adds its own.
package gcs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"

	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"

	"github.com/agentfs/agentfs/backends"
)

func init() {
	backends.Register("gs", func(ctx context.Context, u *url.URL) (backends.Backend, error) {
		if u.Host == "" {
			return nil, fmt.Errorf("gcs backend: URL %q has no bucket (want gs://bucket/prefix)", u.Redacted())
		}
		for k := range u.Query() {
			return nil, fmt.Errorf("gcs backend: unknown URL parameter %q (known: connections, retries)", k)
		}
		return New(ctx, Config{Bucket: u.Host, Prefix: strings.Trim(u.Path, "/")})
	})
}

// Config describes one bucket and prefix.
type Config struct {
	Bucket      string
	Prefix      string
	Connections int // default 16
	ChunkSize   int // resumable upload chunk size for large objects, default 16 MiB
	Options     []option.ClientOption
}

// Backend is one GCS bucket and prefix.
type Backend struct {
	c      Config
	client *storage.Client
	bucket *storage.BucketHandle
	name   string
}

var _ backends.Backend = (*Backend)(nil)

// New connects and checks (by listing at most one object, which needs only object
// permissions) that the bucket exists and is accessible.
func New(ctx context.Context, c Config) (*Backend, error) {
	name := "gs://" + c.Bucket
	if c.Prefix != "" {
		name += "/" + c.Prefix
	}
	if c.Connections <= 0 {
		c.Connections = 16
	}
	if c.ChunkSize <= 0 {
		c.ChunkSize = 16 << 20
	}
	opts := append([]option.ClientOption{storage.WithJSONReads()}, c.Options...)
	client, err := storage.NewClient(ctx, opts...)
	if err != nil {
		if strings.Contains(err.Error(), "credentials") {
			return nil, fmt.Errorf("gcs backend %s: %w: no Google credentials found (set GOOGLE_APPLICATION_CREDENTIALS, run `gcloud auth application-default login`, or run on GCP with a service account): %w",
				name, backends.ErrPermission, err)
		}
		return nil, fmt.Errorf("gcs backend %s: %w", name, err)
	}
	b := &Backend{
		c:      c,
		client: client,
		bucket: client.Bucket(c.Bucket).Retryer(storage.WithPolicy(storage.RetryNever)),
		name:   name,
	}
	_, err = b.bucket.Objects(ctx, &storage.Query{Prefix: b.full0("")}).Next()
	if err != nil && !errors.Is(err, iterator.Done) {
		client.Close()
		err = b.mapErr("open", "", err)
		if errors.Is(err, backends.ErrNotExist) {
			return nil, fmt.Errorf("gcs backend: bucket %q does not exist%s (create it first, or check the name): %w", c.Bucket, emulatorNote(), err)
		}
		return nil, err
	}
	return b, nil
}

func emulatorNote() string {
	if h := os.Getenv("STORAGE_EMULATOR_HOST"); h != "" {
		return " at STORAGE_EMULATOR_HOST=" + h
	}
	return ""
}

func (b *Backend) full0(key string) string { return backends.ObjectName(b.c.Prefix, key) }

func (b *Backend) obj(key string) (*storage.ObjectHandle, error) {
	name, err := backends.CheckedName(b.c.Prefix, key)
	if err != nil {
		return nil, err
	}
	return b.bucket.Object(name), nil
}

func (b *Backend) mapErr(op, key string, err error) error {
	if err == nil {
		return nil
	}
	where := backends.Where(b.name, key)
	code := 0
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		code = ge.Code
	}
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("gcs %s %s: %w", op, where, err)
	case errors.Is(err, storage.ErrBucketNotExist):
		return fmt.Errorf("gcs %s %s: bucket %q does not exist: %w: %w", op, where, b.c.Bucket, backends.ErrNotExist, err)
	case errors.Is(err, storage.ErrObjectNotExist) || code == 404:
		return fmt.Errorf("gcs %s %s: %w: %w", op, where, backends.ErrNotExist, err)
	case code == 412:
		return fmt.Errorf("gcs %s %s: %w: %w", op, where, backends.ErrPrecondition, err)
	case code == 401 || code == 403:
		return fmt.Errorf("gcs %s %s: %w (check the application default credentials and that the account has storage object permissions on bucket %q): %w",
			op, where, backends.ErrPermission, b.c.Bucket, err)
	case code >= 400 && code < 500 && code != 408 && code != 429:
		return backends.Permanent(fmt.Errorf("gcs %s %s: %w", op, where, err))
	}
	return fmt.Errorf("gcs %s %s: %w", op, where, err)
}

func (b *Backend) write(ctx context.Context, o *storage.ObjectHandle, r io.Reader, size int64) (*storage.ObjectAttrs, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // aborts the upload if we return before Close
	w := o.NewWriter(ctx)
	if size <= int64(b.c.ChunkSize) {
		w.ChunkSize = 0 // one request, no 16 MiB buffer
	} else {
		w.ChunkSize = b.c.ChunkSize
	}
	n, err := io.Copy(w, io.LimitReader(r, size))
	if err == nil && n != size {
		err = backends.Permanent(fmt.Errorf("body has %d bytes, size says %d", n, size))
	}
	if err != nil {
		cancel()
		_ = w.Close()
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return w.Attrs(), nil
}

func (b *Backend) Put(ctx context.Context, key string, r io.ReadSeeker, size int64) error {
	o, err := b.obj(key)
	if err != nil {
		return err
	}
	_, err = b.write(ctx, o, r, size)
	return b.mapErr("put", key, err)
}

func (b *Backend) Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	o, err := b.obj(key)
	if err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, backends.Permanent(fmt.Errorf("gcs get %s/%s: negative offset", b.name, key))
	}
	if length == 0 {
		info, err := b.Stat(ctx, key)
		if err != nil {
			return nil, err
		}
		if _, err := backends.CheckRange(key, off, 0, info.Size); err != nil {
			return nil, err
		}
		return backends.ExactReader(io.NopCloser(bytes.NewReader(nil)), 0), nil
	}
	r, err := o.NewRangeReader(ctx, off, length)
	if err != nil {
		var ge *googleapi.Error
		if errors.As(err, &ge) && ge.Code == 416 {
			info, serr := b.Stat(ctx, key)
			if serr != nil {
				return nil, serr
			}
			if _, cerr := backends.CheckRange(key, off, length, info.Size); cerr != nil {
				return nil, cerr
			}
			return backends.ExactReader(io.NopCloser(bytes.NewReader(nil)), 0), nil
		}
		return nil, b.mapErr("get", key, err)
	}
	n, err := backends.CheckRange(key, off, length, r.Attrs.Size)
	if err != nil {
		r.Close()
		return nil, err
	}
	return backends.ExactReader(r, n), nil
}

func (b *Backend) info(a *storage.ObjectAttrs) backends.ObjectInfo {
	key := a.Name
	if b.c.Prefix != "" {
		key = strings.TrimPrefix(key, b.c.Prefix+"/")
	}
	return backends.ObjectInfo{Key: key, Size: a.Size, ETag: strconv.FormatInt(a.Generation, 10), ModTime: a.Updated}
}

func (b *Backend) Stat(ctx context.Context, key string) (backends.ObjectInfo, error) {
	o, err := b.obj(key)
	if err != nil {
		return backends.ObjectInfo{}, err
	}
	a, err := o.Attrs(ctx)
	if err != nil {
		return backends.ObjectInfo{}, b.mapErr("stat", key, err)
	}
	return b.info(a), nil
}

func (b *Backend) Delete(ctx context.Context, key string) error {
	o, err := b.obj(key)
	if err != nil {
		return err
	}
	err = o.Delete(ctx)
	if errors.Is(err, storage.ErrObjectNotExist) {
		return nil
	}
	return b.mapErr("delete", key, err)
}

func (b *Backend) List(ctx context.Context, prefix string, fn func(backends.ObjectInfo) error) error {
	q := &storage.Query{Prefix: b.full0(prefix)}
	if err := q.SetAttrSelection([]string{"Name", "Size", "Generation", "Updated"}); err != nil {
		return err
	}
	it := b.bucket.Objects(ctx, q)
	for {
		a, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return nil
		}
		if err != nil {
			return b.mapErr("list", prefix, err)
		}
		if err := fn(b.info(a)); err != nil {
			return err
		}
	}
}

func (b *Backend) PutIf(ctx context.Context, key string, data []byte, ifMatch string) (string, error) {
	o, err := b.obj(key)
	if err != nil {
		return "", err
	}
	if ifMatch == "" {
		o = o.If(storage.Conditions{DoesNotExist: true})
	} else {
		g, err := strconv.ParseInt(ifMatch, 10, 64)
		if err != nil || g <= 0 {
			return "", fmt.Errorf("gcs putif %s/%s: %w: etag %q is not a GCS generation", b.name, key, backends.ErrPrecondition, ifMatch)
		}
		o = o.If(storage.Conditions{GenerationMatch: g})
	}
	a, err := b.write(ctx, o, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return "", b.mapErr("putif", key, err)
	}
	return strconv.FormatInt(a.Generation, 10), nil
}

func (b *Backend) GetWithETag(ctx context.Context, key string) ([]byte, string, error) {
	o, err := b.obj(key)
	if err != nil {
		return nil, "", err
	}
	r, err := o.NewReader(ctx)
	if err != nil {
		return nil, "", b.mapErr("get", key, err)
	}
	defer r.Close()
	data, err := io.ReadAll(backends.ExactReader(r, r.Attrs.Size))
	if err != nil {
		return nil, "", b.mapErr("get", key, err)
	}
	return data, strconv.FormatInt(r.Attrs.Generation, 10), nil
}

func (b *Backend) Properties() backends.Properties {
	return backends.Properties{Name: b.name, Connections: b.c.Connections, ListAfterWrite: true}
}

func (b *Backend) Close() error { return b.client.Close() }
