// Package file is the local-directory backend: file:///path.
//
// Writes go to a temporary file in the target directory, are fsynced, renamed over the key
// and the directory is fsynced, so a reader sees the old object or the new one, never part of
// one, and a Put that returned survives a crash. ETags are the SHA-256 of the content (kept
// in the user.agentfs.etag xattr where the filesystem supports it, else recomputed). PutIf
// takes an exclusive flock on <root>/.agentfs-lock, which serializes conditional writes
// between goroutines and between processes on the same host.
package file

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/agentfs/agentfs/backends"
	"golang.org/x/sys/unix"
)

func init() {
	backends.Register("file", func(ctx context.Context, u *url.URL) (backends.Backend, error) {
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("file backend: URL %q: want file:///absolute/path (host %q is not supported)", u.String(), u.Host)
		}
		if len(u.Query()) > 0 {
			return nil, fmt.Errorf("file backend: URL %q: no parameters are supported", u.String())
		}
		return New(u.Path)
	})
}

const (
	reserved  = ".agentfs-"
	lockName  = ".agentfs-lock"
	etagXattr = "user.agentfs.etag"
)

// Backend is a directory of objects.
type Backend struct {
	root string
}

var _ backends.Backend = (*Backend)(nil)

// New opens (creating if needed) the directory root.
func New(root string) (*Backend, error) {
	if root == "" || !filepath.IsAbs(root) {
		return nil, fmt.Errorf("file backend: path %q must be absolute", root)
	}
	root = filepath.Clean(root)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("file backend: creating %s: %w", root, mapErr(err))
	}
	return &Backend{root: root}, nil
}

func (b *Backend) path(key string) (string, error) {
	if err := backends.CheckKey(key); err != nil {
		return "", err
	}
	return filepath.Join(b.root, filepath.FromSlash(key)), nil
}

func mapErr(err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: %w", backends.ErrNotExist, err)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%w: %w", backends.ErrPermission, err)
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EROFS), errors.Is(err, syscall.ENOTDIR), errors.Is(err, syscall.EISDIR):
		return backends.Permanent(err)
	}
	return err
}

// writeAtomic writes r to key via a temp file + fsync + rename + directory fsync and returns
// the content hash. check runs (under the caller's lock) just before the rename.
func (b *Backend) writeAtomic(ctx context.Context, key string, r io.Reader, size int64) (string, error) {
	p, err := b.path(key)
	if err != nil {
		return "", err
	}
	dir := filepath.Dir(p)
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(dir, reserved+"tmp-"+hex.EncodeToString(rnd[:]))
	var f *os.File
	// A concurrent Delete tidies empty parent directories, so the directory can vanish
	// between MkdirAll and the create; once the temporary file is in it, it stays.
	for try := 0; ; try++ {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", fmt.Errorf("file backend: put %q: %w", key, mapErr(err))
		}
		f, err = os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) || try == 4 {
			return "", fmt.Errorf("file backend: put %q: %w", key, mapErr(err))
		}
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), ctxReader{ctx, r})
	if err != nil {
		return "", fmt.Errorf("file backend: put %q: %w", key, mapErr(err))
	}
	if size >= 0 && n != size {
		return "", backends.Permanent(fmt.Errorf("file backend: put %q: body has %d bytes, size says %d", key, n, size))
	}
	etag := hex.EncodeToString(h.Sum(nil))
	_ = unix.Fsetxattr(int(f.Fd()), etagXattr, []byte(etag), 0) // best effort
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("file backend: put %q: fsync: %w", key, mapErr(err))
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("file backend: put %q: %w", key, mapErr(err))
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, p); err != nil {
		return "", fmt.Errorf("file backend: put %q: %w", key, mapErr(err))
	}
	ok = true
	if err := syncDir(dir); err != nil {
		return "", fmt.Errorf("file backend: put %q: fsync dir: %w", key, mapErr(err))
	}
	return etag, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func (b *Backend) Put(ctx context.Context, key string, r io.ReadSeeker, size int64) error {
	_, err := b.writeAtomic(ctx, key, r, size)
	return err
}

func (b *Backend) Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	p, err := b.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("file backend: get %q: %w", key, mapErr(err))
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("file backend: get %q: %w", key, mapErr(err))
	}
	if st.IsDir() {
		f.Close()
		return nil, fmt.Errorf("file backend: get %q: %w (a directory)", key, backends.ErrNotExist)
	}
	n, err := backends.CheckRange(key, off, length, st.Size())
	if err != nil {
		f.Close()
		return nil, err
	}
	return backends.ExactReader(readCloser{ctxReader{ctx, io.NewSectionReader(f, off, n)}, f}, n), nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

func fileETag(p string, f *os.File) (string, error) {
	buf := make([]byte, 64)
	if n, err := unix.Getxattr(p, etagXattr, buf); err == nil && n == 64 {
		return string(buf[:n]), nil
	}
	if f == nil {
		var err error
		if f, err = os.Open(p); err != nil {
			return "", err
		}
		defer f.Close()
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (b *Backend) Stat(ctx context.Context, key string) (backends.ObjectInfo, error) {
	p, err := b.path(key)
	if err != nil {
		return backends.ObjectInfo{}, err
	}
	st, err := os.Stat(p)
	if err == nil && st.IsDir() {
		err = fs.ErrNotExist
	}
	if err != nil {
		return backends.ObjectInfo{}, fmt.Errorf("file backend: stat %q: %w", key, mapErr(err))
	}
	etag, err := fileETag(p, nil)
	if err != nil {
		return backends.ObjectInfo{}, fmt.Errorf("file backend: stat %q: %w", key, mapErr(err))
	}
	return backends.ObjectInfo{Key: key, Size: st.Size(), ETag: etag, ModTime: st.ModTime()}, nil
}

func (b *Backend) Delete(ctx context.Context, key string) error {
	p, err := b.path(key)
	if err != nil {
		return err
	}
	// Under the conditional-write lock: a Delete between a PutIf's ETag check and its write
	// would otherwise be undone by that write (a removed lease coming back to life), which
	// no object store allows.
	unlock, err := b.lock()
	if err != nil {
		return fmt.Errorf("file backend: delete %q: lock: %w", key, err)
	}
	err = os.Remove(p)
	unlock()
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("file backend: delete %q: %w", key, mapErr(err))
	}
	// Tidy empty parent directories (best effort; a concurrent Put that loses its directory
	// makes it again, writeAtomic).
	for d := filepath.Dir(p); d != b.root && strings.HasPrefix(d, b.root); d = filepath.Dir(d) {
		if os.Remove(d) != nil {
			break
		}
	}
	return nil
}

func (b *Backend) List(ctx context.Context, prefix string, fn func(backends.ObjectInfo) error) error {
	var infos []backends.ObjectInfo
	// Walk only the directory that can hold keys with this prefix.
	start := b.root
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		start = filepath.Join(b.root, filepath.FromSlash(prefix[:i]))
	}
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), reserved) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(b.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		st, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // deleted while we walked
			}
			return err
		}
		infos = append(infos, backends.ObjectInfo{Key: key, Size: st.Size(), ModTime: st.ModTime()})
		return nil
	})
	if err != nil {
		return fmt.Errorf("file backend: list %q: %w", prefix, mapErr(err))
	}
	sort.Slice(infos, func(i, j int) bool { return infos[i].Key < infos[j].Key })
	for _, oi := range infos {
		if err := fn(oi); err != nil {
			return err
		}
	}
	return nil
}

func (b *Backend) lock() (func(), error) {
	f, err := os.OpenFile(filepath.Join(b.root, lockName), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, mapErr(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil // closing the fd drops the lock
}

func (b *Backend) PutIf(ctx context.Context, key string, data []byte, ifMatch string) (string, error) {
	p, err := b.path(key)
	if err != nil {
		return "", err
	}
	unlock, err := b.lock()
	if err != nil {
		return "", fmt.Errorf("file backend: putif %q: lock: %w", key, err)
	}
	defer unlock()
	cur, err := os.ReadFile(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if ifMatch != "" {
			return "", fmt.Errorf("file backend: putif %q: %w (object does not exist, expected etag %s)", key, backends.ErrPrecondition, ifMatch)
		}
	case err != nil:
		return "", fmt.Errorf("file backend: putif %q: %w", key, mapErr(err))
	case ifMatch == "":
		return "", fmt.Errorf("file backend: putif %q: %w (object already exists)", key, backends.ErrPrecondition)
	default:
		if got := hashOf(sha256.New(), cur); got != ifMatch {
			return "", fmt.Errorf("file backend: putif %q: %w (etag is %s, expected %s)", key, backends.ErrPrecondition, got, ifMatch)
		}
	}
	return b.writeAtomic(ctx, key, bytes.NewReader(data), int64(len(data)))
}

func hashOf(h hash.Hash, data []byte) string {
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}

func (b *Backend) GetWithETag(ctx context.Context, key string) ([]byte, string, error) {
	p, err := b.path(key)
	if err != nil {
		return nil, "", err
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, "", fmt.Errorf("file backend: get %q: %w", key, mapErr(err))
	}
	return data, hashOf(sha256.New(), data), nil
}

func (b *Backend) Properties() backends.Properties {
	return backends.Properties{Name: "file://" + b.root, Connections: 8, ListAfterWrite: true}
}

func (b *Backend) Close() error { return nil }
