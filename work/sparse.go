package work

import (
	"context"
	"syscall"
)

// Sparse files: zeroing ranges (fallocate punch-hole and zero-range) and finding data and
// holes (lseek SEEK_DATA, SEEK_HOLE).
//
// A hole is a range that reads as zeros. Zeroed data is stored as nothing: an all-zero page
// or block is not kept when the file's data is folded into blocks, so a punched range frees
// its space at the next checkpoint. lseek reports every all-zero 4 KiB page as a hole,
// whether it was never written, punched, or written with zeros: POSIX lets a filesystem
// report zeros as a hole, and the tools that look for holes (cp --sparse, tar -S, rsync -S)
// want exactly that.

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
// the end, or when no data follows; the end of the file is a hole.
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
	buf := make([]byte, 1<<20)
	start := off / seekUnit * seekUnit
	for pos := start; pos < size; {
		k, err := ws.Read(ctx, ino, pos, buf[:min(int64(len(buf)), size-pos)])
		if err != nil {
			return 0, err
		}
		if k == 0 {
			break
		}
		for p := 0; p < k; p += seekUnit {
			IsZero := allZero(buf[p:min(p+seekUnit, k)])
			if IsZero == hole {
				return max(off, pos+int64(p)), nil
			}
		}
		pos += int64(k)
	}
	if hole {
		return size, nil
	}
	return 0, syscall.ENXIO
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
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
