package work

import (
	"context"
	"encoding/binary"
	"syscall"

	"github.com/cockroachdb/pebble/v2"
)

// Sparse files: zeroing ranges (fallocate punch-hole and zero-range) and finding data and
// holes (lseek SEEK_DATA, SEEK_HOLE).
//
// A hole is a range that reads as zeros. Zeroed data is stored as nothing: an all-zero page
// or block is not kept when the file's data is folded into blocks, so a punched range frees
// its space at the next checkpoint. lseek reports a 4 KiB page as a hole when nothing is
// stored for it: never written, punched, or written with zeros (a page of zeros is stored
// empty, a block of zeros not at all). POSIX lets a filesystem report zeros as a hole, and
// the tools that look for holes (cp --sparse, tar -S, rsync -S) want that; zeros inside a
// stored block are reported as data, since telling them apart would mean reading them.

// seekUnit is the granularity of holes reported by Seek.
const seekUnit = 4 << 10

// ZeroRange makes [off, off+length) of regular file ino read as zeros. With keepSize the
// size never changes (punch-hole, zero-range with KEEP_SIZE); without it the file grows to
// off+length if it is shorter (zero-range). Zeroing does not count against a quota.
func (ws *Workspace) ZeroRange(ctx context.Context, ino uint64, off, length int64, keepSize bool) error {
	if off < 0 || length <= 0 {
		return syscall.EINVAL
	}
	end := off + length
	if end < off || end > MaxFileSize {
		return syscall.EFBIG
	}
	n, err := ws.GetAttr(ctx, ino)
	if err != nil {
		return err
	}
	if n.IsDir() {
		return syscall.EISDIR
	}
	if !n.IsRegular() {
		return syscall.ENODEV
	}
	size := int64(n.Size)
	buf := make([]byte, min(int64(1<<20), max(0, min(end, size)-off)))
	for pos := off; pos < min(end, size); {
		k := min(int64(len(buf)), min(end, size)-pos)
		if _, err := ws.writeSince(ctx, nil, ino, pos, buf[:k]); err != nil {
			return err
		}
		pos += k
	}
	if !keepSize && end > size {
		// An empty write at the end extends the size atomically, without shrinking a file
		// that a concurrent write made longer.
		if _, err := ws.writeSince(ctx, nil, ino, end, nil); err != nil {
			return err
		}
	}
	return nil
}

// Seek returns the offset of the first data (hole false) or hole (hole true) at or after
// off in regular file ino, as lseek SEEK_DATA and SEEK_HOLE: ENXIO when off is at or past
// the end, or when no data follows; the end of the file is a hole. It reads keys, not
// content: a 4 KiB page is data when the working layer holds a non-zero page for it, or,
// without a page, when a stored block covers it (a fold stores no all-zero block, and a
// page of zeros is stored empty). Zeros inside a stored block therefore count as data,
// which POSIX allows. The cost follows the number of keys between off and the answer.
func (ws *Workspace) Seek(ctx context.Context, ino uint64, off int64, hole bool) (int64, error) {
	n, err := ws.GetAttr(ctx, ino)
	if err != nil {
		return 0, err
	}
	if n.IsDir() {
		return 0, syscall.EISDIR
	}
	size := int64(n.Size)
	if off < 0 {
		return 0, syscall.EINVAL
	}
	if off >= size {
		return 0, syscall.ENXIO
	}
	if n.Inline {
		if hole {
			return size, nil
		}
		return off, nil
	}
	ws.mu.RLock()
	defer ws.mu.RUnlock()
	units := uint64(size+seekUnit-1) / seekUnit
	pages, err := ws.pageCursor(ino, uint64(off)/seekUnit, units)
	if err != nil {
		return 0, err
	}
	defer pages.close()
	const none = ^uint64(0)
	nextBlock, blockFrom := none, none // the first block with a key at or after blockFrom
	for unit := uint64(off) / seekUnit; unit < units; {
		if b := unit / pagesPerBlock; blockFrom == none || b > nextBlock || b < blockFrom {
			blockFrom, nextBlock = b, none
			err := ws.scan(ctx, BlockKey(ino, b), PrefixEnd(BlockPrefix(ino)), func(k, _ []byte) error {
				nextBlock = binary.BigEndian.Uint64(k[9:17])
				return Stop
			})
			if err != nil {
				return 0, err
			}
		}
		p, v, err := pages.next(unit)
		if err != nil {
			return 0, err
		}
		// The units [unit, run) are all data or all hole.
		var data bool
		var run uint64
		switch {
		case p == unit:
			data, run = len(v) > 0, unit+1
		case nextBlock == unit/pagesPerBlock:
			data, run = true, min(p, (nextBlock+1)*pagesPerBlock)
		default:
			data, run = false, min(p, nextBlock*pagesPerBlock)
			if nextBlock == none {
				run = p
			}
		}
		if data != hole {
			return max(off, int64(unit)*seekUnit), nil
		}
		unit = run
	}
	if hole {
		return size, nil
	}
	return 0, syscall.ENXIO
}

// pageCursor walks the working pages of a file forward.
type pageCursor struct {
	it    *pebble.Iterator // nil: no overlay (a read-only view)
	ws    *Workspace
	index uint64
	value []byte
	done  bool
}

func (ws *Workspace) pageCursor(ino, first, last uint64) (*pageCursor, error) {
	c := &pageCursor{ws: ws, done: ws.readOnly}
	if ws.readOnly {
		return c, nil
	}
	it, err := ws.db.NewIter(&pebble.IterOptions{
		LowerBound: ws.overlayKey(pageKey(ino, first)),
		UpperBound: ws.overlayKey(pageKey(ino, last+1)),
	})
	if err != nil {
		return nil, err
	}
	c.it = it
	c.done = !it.First()
	c.load()
	return c, nil
}

// load skips deleted entries and remembers the current page.
func (c *pageCursor) load() {
	for !c.done {
		if v := c.it.Value(); len(v) > 0 && v[0] == 1 {
			c.index, c.value = keyPage(c.it.Key()[len(c.ws.prefix):]), v[1:]
			return
		}
		c.done = !c.it.Next()
	}
}

// next returns the first page at or after unit and its stored bytes (^0 when none).
func (c *pageCursor) next(unit uint64) (uint64, []byte, error) {
	for !c.done && c.index < unit {
		c.done = !c.it.Next()
		c.load()
	}
	if c.done {
		if c.it != nil {
			return ^uint64(0), nil, c.it.Error()
		}
		return ^uint64(0), nil, nil
	}
	return c.index, c.value, nil
}

func (c *pageCursor) close() {
	if c.it != nil {
		c.it.Close()
	}
}

// StoredBytes returns what a file's data takes in the repository, for st_blocks: its stored
// blocks (a hole stores nothing), capped at its size rounded up to 4 KiB. Inline data counts
// as its size, so a non-empty file never reports zero blocks (some tools take that for "all
// holes"). Cost: one pass over the file's block keys.
func (ws *Workspace) StoredBytes(ctx context.Context, n *Inode) (int64, error) {
	if !n.IsRegular() || n.Inline || n.Size == 0 {
		return int64(n.Size), nil
	}
	ws.mu.RLock()
	defer ws.mu.RUnlock()
	var blocks int64
	err := ws.scan(ctx, BlockPrefix(n.Ino), PrefixEnd(BlockPrefix(n.Ino)), func(k, v []byte) error {
		blocks++
		return nil
	})
	if err != nil {
		return 0, err
	}
	var pages int64 // the working layer's pages, not yet folded into blocks
	if err := ws.pageSpan(n.Ino, 0, (n.Size-1)/PageSize, func(uint64, []byte) { pages++ }); err != nil {
		return 0, err
	}
	rounded := int64((n.Size + seekUnit - 1) / seekUnit * seekUnit)
	return min(blocks*BlockSize+pages*PageSize, rounded), nil
}
