// Package remote moves branches between a repository and object storage: push, pull, clone,
// and lazy fetching of file content for mounts of a cloned branch.
//
// The bucket holds immutable packs of objects (commits, tree nodes, data blocks — all blocks
// of the store, addressed by their hash), one immutable index object per pack, and one ref
// object per branch that changes only by conditional writes (PutIf), so two hosts never
// silently overwrite each other's branch. See docs/format.md for the layout and
// branch/remote.go for the local cache of the remote's index kept in Pebble.
//
// Safety of a push rests on ordering: a pack and its index are written before any ref can
// point at their objects, and a ref moves only by compare-and-swap from the value this
// repository last saw. A failed or rejected push leaves at most unreferenced packs behind.
package remote

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/agentfs/agentfs/backends"
	"github.com/agentfs/agentfs/branch"
	"github.com/agentfs/agentfs/internal/kv"
	"github.com/agentfs/agentfs/store"
)

var (
	// ErrRejected: the remote branch changed since this repository last saw it.
	ErrRejected = errors.New("push rejected")
	// ErrDiverged: local and remote branch both have commits the other lacks.
	ErrDiverged = errors.New("branches have diverged")
	// ErrNoRemote: no remote of that name is configured.
	ErrNoRemote = fmt.Errorf("remote %w", branch.ErrNotFound)
)

// Options configure a Manager.
type Options struct {
	Logger *log.Logger
	// PackSize is the size at which a pack is closed and uploaded (default 16 MiB).
	PackSize int
	// CacheLimit bounds the bytes of lazily fetched file content kept in the local store;
	// beyond it the oldest fetched blocks are evicted (they are in the remote). 0 = 4 GiB,
	// negative = no limit.
	CacheLimit int64
	// ReadAhead is the largest read-ahead window, in bytes, of a sequential lazy reader
	// (readahead.go): how far ahead of it the next blocks of the same pack (the next blocks of
	// the same file, since push writes a file's blocks in order) are fetched. The blocks read
	// ahead and in flight are bounded by 4 windows. Default 16 MiB; negative = none.
	ReadAhead int64
	// Open opens a backend URL (default backends.Open). Tests wrap it.
	Open func(ctx context.Context, url string) (backends.Backend, error)
	// Host names this repository in the refs it writes (default: the hostname).
	Host string
	// Dir is the repository's directory: its signing key (SigningKeyFile) signs the refs
	// this repository pushes. "" = no signing.
	Dir string
	// LeaseTTL is how long a push or collection lease lives without renewal (lock.go);
	// 0 = $AGENTFS_LEASE_TTL or DefaultLeaseTTL.
	LeaseTTL time.Duration
}

// Manager runs remote operations for one repository. It installs itself as the block
// store's Fetcher, so blocks missing locally come from the remotes whose index lists them.
// It is safe for concurrent use.
type Manager struct {
	e  *branch.Engine
	st *store.Store
	db *pebble.DB
	o  Options

	mu    sync.Mutex
	conns map[string]*conn // open backends by remote name
	opMu  map[string]*sync.Mutex
	rings map[string]*keyRing // key rings by remote name (nil: plaintext); keys.go

	progMu   sync.Mutex
	progNext int
	progress map[int]*tracker

	cache     fetchCache
	lazy      lazyReader // flights and read-ahead of lazy reads (readahead.go)
	refreshMu sync.Mutex // one refresh after a 404 at a time

	stats Stats
}

// Stats counts what the manager moved.
type Stats struct {
	BytesDown, BytesUp, Gets, Puts atomic.Int64
	Fetched, FetchedBytes          atomic.Int64 // blocks fetched lazily (and their bytes)
	Evicted                        atomic.Int64 // blocks evicted from the local cache
	AheadDropped                   atomic.Int64 // blocks read ahead, dropped unread for memory
	AheadPacks                     atomic.Int64 // packs read ahead where a file went on, before its reader got there
	Misses                         atomic.Int64 // blocks a reader asked for that nothing had fetched yet
}

type conn struct {
	url string
	b   backends.Backend
}

// New returns a manager for the repository of e and installs its fetcher in e's store.
func New(e *branch.Engine, o Options) *Manager {
	if o.Logger == nil {
		o.Logger = log.New(os.Stderr, "agentfs: ", 0)
	}
	if o.PackSize <= 0 {
		o.PackSize = 16 << 20
		if n, err := strconv.Atoi(os.Getenv("AGENTFS_PACK_SIZE")); err == nil && n > 0 {
			o.PackSize = n
		}
	}
	if o.CacheLimit == 0 {
		o.CacheLimit = 4 << 30
	}
	if o.ReadAhead == 0 {
		o.ReadAhead = 16 << 20
	}
	if o.Open == nil {
		o.Open = backends.Open
	}
	if o.Host == "" {
		o.Host, _ = os.Hostname()
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = DefaultLeaseTTL
		if d, err := time.ParseDuration(os.Getenv("AGENTFS_LEASE_TTL")); err == nil && d > 0 {
			o.LeaseTTL = d
		}
	}
	m := &Manager{
		e: e, st: e.Store(), db: e.Store().DB(), o: o,
		conns: map[string]*conn{}, opMu: map[string]*sync.Mutex{}, progress: map[int]*tracker{},
		rings: map[string]*keyRing{},
	}
	m.cache.init()
	m.lazy.init(o.ReadAhead)
	m.st.SetFetcher(m.fetch)
	return m
}

// Close closes the open backends and removes the fetcher.
func (m *Manager) Close() error {
	m.st.SetFetcher(nil)
	m.lazy.close()
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for name, c := range m.conns {
		errs = append(errs, c.b.Close())
		delete(m.conns, name)
	}
	return errors.Join(errs...)
}

// Stats returns the manager's counters.
func (m *Manager) Stats() *Stats { return &m.stats }

// Remote is a configured remote.
type Remote struct {
	Name string `json:"name"`
	URL  string `json:"url"`
}

func remotePrefix(name string) []byte {
	return append(append([]byte{branch.PrefixRemote}, name...), 0)
}

func remoteKey(name string, sub byte, rest ...[]byte) []byte {
	k := append(remotePrefix(name), sub)
	for _, r := range rest {
		k = append(k, r...)
	}
	return k
}

func prefixEnd(p []byte) []byte { return kv.PrefixEnd(p) }

func (m *Manager) getKey(k []byte) ([]byte, bool, error) { return kv.Get(m.db, k) }

// Add configures a remote. It opens the URL to check it (the bucket must exist and the
// credentials work) but writes nothing there. sec (at most one) gives its keys and trusted
// signers.
func (m *Manager) Add(ctx context.Context, name, url string, sec ...Security) (Remote, error) {
	if err := branch.ValidateName("remote", name); err != nil {
		return Remote{}, err
	}
	if _, ok, err := m.getKey(remoteKey(name, 'u')); err != nil {
		return Remote{}, err
	} else if ok {
		return Remote{}, fmt.Errorf("remote %q %w (remove it first: agentfs remote remove %s)", name, branch.ErrExists, name)
	}
	b, err := m.o.Open(ctx, url)
	if err != nil {
		return Remote{}, err
	}
	mk, err := readMarker(ctx, b)
	if err != nil {
		b.Close()
		return Remote{}, err
	}
	if err := m.st.Durable(func() error { return m.db.Set(remoteKey(name, 'u'), []byte(url), pebble.Sync) }); err != nil {
		b.Close()
		return Remote{}, err
	}
	m.mu.Lock()
	if old := m.conns[name]; old != nil {
		old.b.Close()
	}
	m.conns[name] = &conn{url: url, b: &counting{Backend: b, s: &m.stats}}
	delete(m.rings, name)
	m.mu.Unlock()
	for _, s := range sec {
		if err := m.configure(name, s); err != nil {
			m.Remove(ctx, name)
			return Remote{}, err
		}
	}
	if mk != nil { // a new bucket gets its marker (and, with a key, its salt) on the first push
		if _, err := m.ring(ctx, name); err != nil {
			m.Remove(ctx, name)
			return Remote{}, err
		}
	}
	return Remote{Name: name, URL: url}, nil
}

// Remove forgets a remote and its index cache. Blocks fetched from it stay.
func (m *Manager) Remove(ctx context.Context, name string) error {
	if _, ok, err := m.getKey(remoteKey(name, 'u')); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("%w: %q", ErrNoRemote, name)
	}
	lock := m.remoteLock(name)
	lock.Lock()
	defer lock.Unlock()
	b := m.db.NewBatch()
	defer b.Close()
	p := remotePrefix(name)
	if err := b.DeleteRange(p, prefixEnd(p), nil); err != nil {
		return err
	}
	it, err := m.db.NewIter(&pebble.IterOptions{LowerBound: []byte{branch.PrefixRemoteIndex}, UpperBound: []byte{branch.PrefixRemoteIndex + 1}})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		if string(it.Key()[33:]) == name {
			if err := b.Delete(it.Key(), nil); err != nil {
				it.Close()
				return err
			}
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return err
	}
	if err := m.st.CommitDurable(b); err != nil {
		return err
	}
	m.mu.Lock()
	if c := m.conns[name]; c != nil {
		c.b.Close()
		delete(m.conns, name)
	}
	delete(m.rings, name)
	m.mu.Unlock()
	return nil
}

// List returns the configured remotes sorted by name.
func (m *Manager) List(ctx context.Context) ([]Remote, error) {
	it, err := m.db.NewIter(&pebble.IterOptions{LowerBound: []byte{branch.PrefixRemote}, UpperBound: []byte{branch.PrefixRemote + 1}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	out := []Remote{}
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		// 'X' name 0 'u': names hold no NUL, so the first NUL ends the name.
		if nul := bytes.IndexByte(k, 0); nul > 1 && nul == len(k)-2 && k[len(k)-1] == 'u' {
			out = append(out, Remote{Name: string(k[1 : len(k)-2]), URL: string(it.Value())})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, it.Error()
}

// backend returns the open backend of a remote, opening it on first use.
func (m *Manager) backend(ctx context.Context, name string) (backends.Backend, error) {
	m.mu.Lock()
	c := m.conns[name]
	m.mu.Unlock()
	if c != nil {
		return c.b, nil
	}
	url, ok, err := m.getKey(remoteKey(name, 'u'))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: %q (add it with: agentfs remote add %s URL)", ErrNoRemote, name, name)
	}
	b, err := m.o.Open(ctx, string(url))
	if err != nil {
		return nil, fmt.Errorf("remote %s: %w", name, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.conns[name]; c != nil {
		b.Close()
		return c.b, nil
	}
	cb := &counting{Backend: b, s: &m.stats}
	m.conns[name] = &conn{url: string(url), b: cb}
	return cb, nil
}

// remoteLock serialises push and pull per remote, so that one repository never uploads the
// same objects twice at once.
func (m *Manager) remoteLock(name string) *sync.Mutex {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.opMu[name]
	if l == nil {
		l = &sync.Mutex{}
		m.opMu[name] = l
	}
	return l
}

// marker is the bucket's format marker (agentfs.json).
type marker struct {
	Format     string     `json:"format"`
	Version    int        `json:"version"`
	Encryption *encParams `json:"encryption,omitempty"`
}

// readMarker reads the bucket's format marker; nil when it has none.
func readMarker(ctx context.Context, b backends.Backend) (*marker, error) {
	data, _, err := getCapped(ctx, b, keyFormat, maxRefSize)
	if errors.Is(err, backends.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var f marker
	if err := json.Unmarshal(data, &f); err != nil || f.Format != formatName {
		return nil, fmt.Errorf("%w: %s in %s is not an agentfs remote marker", ErrFormat, keyFormat, b.Properties().Name)
	}
	switch {
	case f.Version == formatV && f.Encryption == nil:
	case f.Version == formatEncrypted && f.Encryption != nil:
		if _, err := f.Encryption.check(); err != nil {
			return nil, err
		}
	case f.Version == formatEncrypted || f.Version == formatV:
		return nil, fmt.Errorf("%w: %s in %s is malformed", ErrFormat, keyFormat, b.Properties().Name)
	default:
		return nil, fmt.Errorf("%w: %s has format version %d, this agentfs reads %d and %d", ErrFormat, b.Properties().Name, f.Version, formatV, formatEncrypted)
	}
	return &f, nil
}

// checkFormat reads the bucket's format marker, if any.
func checkFormat(ctx context.Context, b backends.Backend) error {
	_, err := readMarker(ctx, b)
	return err
}

// ensureFormat writes the format marker if the bucket has none: version 1, or version 2
// with enc for an encrypted remote.
func ensureFormat(ctx context.Context, b backends.Backend, enc *encParams) error {
	if mk, err := readMarker(ctx, b); err != nil || mk != nil {
		return err
	}
	mk := marker{Format: formatName, Version: formatV}
	if enc != nil {
		mk.Version, mk.Encryption = formatEncrypted, enc
	}
	data, _ := json.Marshal(mk)
	_, err := b.PutIf(ctx, keyFormat, append(data, '\n'), "")
	if errors.Is(err, backends.ErrPrecondition) {
		return checkFormat(ctx, b)
	}
	return err
}

// tracking is what this repository last saw of a remote branch.
type tracking struct {
	Commit store.ID
	ETag   string
}

func (m *Manager) setTracking(remote, br string, t tracking) error {
	v := append(bytes.Clone(t.Commit[:]), t.ETag...)
	return m.st.Durable(func() error { return m.db.Set(remoteKey(remote, 't', []byte(br)), v, pebble.Sync) })
}

// location is where a remote keeps an object.
type location struct {
	remote string
	pack   store.ID
	off    uint64
	length uint32
	kind   byte
}

func indexKey2(id store.ID, remote string) []byte {
	return append(append([]byte{branch.PrefixRemoteIndex}, id[:]...), remote...)
}

func encodeLoc(l location) []byte {
	v := make([]byte, 0, 45)
	v = append(v, l.pack[:]...)
	v = binary.BigEndian.AppendUint64(v, l.off)
	v = binary.BigEndian.AppendUint32(v, l.length)
	return append(v, l.kind)
}

func decodeLoc(remote string, v []byte) (location, bool) {
	if len(v) != 45 {
		return location{}, false
	}
	return location{remote: remote, pack: store.ID(v[:32]), off: binary.BigEndian.Uint64(v[32:]),
		length: binary.BigEndian.Uint32(v[40:]), kind: v[44]}, true
}

// has reports whether the remote's index (as cached) lists id.
func (m *Manager) has(remote string, id store.ID) (bool, error) {
	_, ok, err := m.locate(remote, id)
	return ok, err
}

// locate finds id in the cached index of remote ("" = any remote).
func (m *Manager) locate(remote string, id store.ID) (location, bool, error) {
	if remote != "" {
		v, ok, err := m.getKey(indexKey2(id, remote))
		if err != nil || !ok {
			return location{}, false, err
		}
		l, ok := decodeLoc(remote, v)
		return l, ok, nil
	}
	lo := append([]byte{branch.PrefixRemoteIndex}, id[:]...)
	it, err := m.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
	if err != nil {
		return location{}, false, err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		if l, ok := decodeLoc(string(it.Key()[33:]), it.Value()); ok {
			return l, true, nil
		}
	}
	return location{}, false, it.Error()
}

// recordPack adds a pack's entries to the cached index.
func (m *Manager) recordPack(remote string, pack store.ID, size int64, entries []entry) error {
	b := m.db.NewBatch()
	defer b.Close()
	for _, e := range entries {
		l := location{pack: pack, off: e.Offset, length: e.Length, kind: e.Kind}
		if err := b.Set(indexKey2(e.ID, remote), encodeLoc(l), nil); err != nil {
			return err
		}
		ov := append(bytes.Clone(e.ID[:]), e.Kind)
		ov = binary.AppendUvarint(ov, uint64(e.Length))
		if err := b.Set(remoteKey(remote, 'o', pack[:], binary.BigEndian.AppendUint64(nil, e.Offset)), ov, nil); err != nil {
			return err
		}
	}
	if err := b.Set(remoteKey(remote, 'i', pack[:]), binary.BigEndian.AppendUint64(nil, uint64(size)), nil); err != nil {
		return err
	}
	return b.Commit(pebble.NoSync)
}

// refresh loads the index objects of remote that the cache does not have yet. An index that
// a collection on another host deleted between the listing and the read is skipped, and the
// listing is read again (it then names what replaced it), up to three times.
func (m *Manager) refresh(ctx context.Context, remote string, b backends.Backend, p *tracker) error {
	for try := 0; ; try++ {
		gone, err := m.refreshOnce(ctx, remote, b, p)
		if err != nil || gone == 0 || try == 2 {
			return err
		}
	}
}

func (m *Manager) refreshOnce(ctx context.Context, remote string, b backends.Backend, p *tracker) (int, error) {
	ring, err := m.ring(ctx, remote)
	if err != nil {
		return 0, err
	}
	var todo []store.ID
	listed := map[store.ID]bool{}
	err = b.List(ctx, dirIndex, func(oi backends.ObjectInfo) error {
		id, ok := parseHexName(oi.Key, dirIndex)
		if !ok {
			return nil
		}
		listed[id] = true
		if _, have, err := m.getKey(remoteKey(remote, 'i', id[:])); err != nil {
			return err
		} else if !have {
			todo = append(todo, id)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("remote %s: list index: %w", remote, err)
	}
	// Packs a collection (on any host) deleted leave the cache, so that nothing believes the
	// remote still holds their objects.
	if err := m.dropVanished(remote, listed); err != nil {
		return 0, err
	}
	p.set("index", 0, int64(len(todo)))
	var gone atomic.Int64
	err = parallel(ctx, len(todo), 8, func(i int) error {
		id := todo[i]
		data, err := readAll(ctx, b, indexKey(id), 0, -1)
		if errors.Is(err, backends.ErrNotExist) {
			gone.Add(1)
			return nil
		}
		if err != nil {
			return fmt.Errorf("remote %s: read index %s: %w", remote, id, err)
		}
		if data, err = ring.openWhole("index", id.String(), data); err != nil {
			return err
		}
		pack, entries, err := decodeIndex(indexKey(id), data)
		if err != nil {
			return err
		}
		if pack != id {
			return fmt.Errorf("%w: index %s names pack %s", ErrCorrupt, id, pack)
		}
		var size int64
		for _, e := range entries {
			size = max(size, int64(e.Offset)+int64(e.Length))
		}
		if err := m.recordPack(remote, id, size, entries); err != nil {
			return err
		}
		p.add(1, int64(len(data)))
		return nil
	})
	return int(gone.Load()), err
}

// Size caps for what is read whole from a bucket, so that no object there can make agentfs
// allocate without limit.
const (
	maxRefSize   = 64 << 10
	maxIndexSize = 64 << 20
)

// readAll reads length bytes from off (length < 0: to the end, at most maxIndexSize).
func readAll(ctx context.Context, b backends.Backend, key string, off, length int64) ([]byte, error) {
	rc, err := b.Get(ctx, key, off, length)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	limit := length
	if limit < 0 {
		limit = maxIndexSize
	}
	var data []byte
	if length >= 0 {
		// The size is known: read into one buffer, not one that grows (and is copied) as
		// io.ReadAll's does; a read past length (a bucket returning more) still shows.
		data = make([]byte, length+1)
		n, err := io.ReadFull(rc, data)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			return nil, err
		}
		data = data[:n]
	} else if data, err = io.ReadAll(io.LimitReader(rc, limit+1)); err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		if length < 0 {
			return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrCorrupt, key, limit)
		}
		return nil, fmt.Errorf("%w: %s returned more than the %d bytes asked for", ErrCorrupt, key, length)
	}
	if length >= 0 && int64(len(data)) != length {
		return nil, fmt.Errorf("%w: %s returned %d of the %d bytes asked for", ErrCorrupt, key, len(data), length)
	}
	return data, nil
}

// getCapped reads a small object whole (a ref, a lease) with its ETag, refusing one larger
// than max before reading it.
func getCapped(ctx context.Context, b backends.Backend, key string, max int64) ([]byte, string, error) {
	oi, err := b.Stat(ctx, key)
	if err != nil {
		return nil, "", err
	}
	if oi.Size > max {
		return nil, "", fmt.Errorf("%w: %s is %d bytes, more than the %d it may have", ErrCorrupt, key, oi.Size, max)
	}
	data, etag, err := b.GetWithETag(ctx, key)
	if err == nil && int64(len(data)) > max {
		return nil, "", fmt.Errorf("%w: %s is more than %d bytes", ErrCorrupt, key, max)
	}
	return data, etag, err
}

// parallel runs fn(0..n-1) on up to k goroutines and returns the first error.
func parallel(ctx context.Context, n, k int, fn func(i int) error) error {
	if n == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for w := 0; w < min(n, k); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(i); err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
		if errors.Is(firstErr, context.Canceled) {
			firstErr = nil
		}
	}
	return firstErr
}

// counting counts the bytes and requests of a backend.
type counting struct {
	backends.Backend
	s *Stats
}

func (c *counting) Put(ctx context.Context, key string, r io.ReadSeeker, size int64) error {
	c.s.Puts.Add(1)
	err := c.Backend.Put(ctx, key, r, size)
	if err == nil {
		c.s.BytesUp.Add(size)
	}
	return err
}

func (c *counting) Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	c.s.Gets.Add(1)
	rc, err := c.Backend.Get(ctx, key, off, length)
	if err != nil {
		return nil, err
	}
	return &countReader{rc, c.s}, nil
}

func (c *counting) PutIf(ctx context.Context, key string, data []byte, ifMatch string) (string, error) {
	c.s.Puts.Add(1)
	c.s.BytesUp.Add(int64(len(data)))
	return c.Backend.PutIf(ctx, key, data, ifMatch)
}

func (c *counting) GetWithETag(ctx context.Context, key string) ([]byte, string, error) {
	c.s.Gets.Add(1)
	d, e, err := c.Backend.GetWithETag(ctx, key)
	c.s.BytesDown.Add(int64(len(d)))
	return d, e, err
}

type countReader struct {
	io.ReadCloser
	s *Stats
}

func (r *countReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.s.BytesDown.Add(int64(n))
	return n, err
}

// dropVanished forgets the cached packs whose index is not in listed. It reads only the
// per-pack keys unless some pack is gone.
func (m *Manager) dropVanished(remote string, listed map[store.ID]bool) error {
	pi := remoteKey(remote, 'i')
	it, err := m.db.NewIter(&pebble.IterOptions{LowerBound: pi, UpperBound: prefixEnd(pi)})
	if err != nil {
		return err
	}
	any := false
	for it.First(); it.Valid() && !any; it.Next() {
		if k := it.Key(); len(k) == len(pi)+32 && !listed[store.ID(k[len(pi):])] {
			any = true
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil || !any {
		return err
	}
	cached, err := m.cachedPacks(remote)
	if err != nil {
		return err
	}
	var gone []store.ID
	where := map[store.ID][]location{}
	for id, ents := range cached {
		if !listed[id] {
			gone = append(gone, id)
			continue
		}
		for _, e := range ents {
			where[e.ID] = append(where[e.ID], location{remote: remote, pack: id, off: e.Offset, length: e.Length, kind: e.Kind})
		}
	}
	return m.forgetPacks(remote, gone, cached, where)
}
