package branch

import (
	"context"
	"fmt"
	"syscall"

	"github.com/agentfs/agentfs/store"
)

// MaxFileSize bounds file sizes (block indexes must fit the key space comfortably).
const MaxFileSize = 1 << 50

func (ws *Workspace) inode(ctx context.Context, ino uint64) (*Inode, error) {
	v, ok, err := ws.get(ctx, inodeKey(ino))
	return inodeFrom(ino, v, ok, err)
}

// storedBlock returns block index of ino as stored (nil for a hole). The returned slice may
// be shorter than BlockSize: the rest reads as zeros.
func (ws *Workspace) storedBlock(ctx context.Context, ino, index uint64, buf []byte) ([]byte, error) {
	v, ok, err := ws.get(ctx, blockKey(ino, index))
	if err != nil || !ok {
		return nil, err
	}
	if len(v) != len(store.ID{}) {
		return nil, fmt.Errorf("inode %d block %d: %w: malformed block reference", ino, index, syscall.EIO)
	}
	id := store.ID(v)
	data, err := ws.e.st.Get(ctx, id, buf)
	if err != nil {
		ws.e.log.Printf("read of inode %d block %d (block %s) failed: %v", ino, index, id, err)
		return nil, fmt.Errorf("inode %d block %d: %w: %w", ino, index, syscall.EIO, err)
	}
	return data, nil
}

// Read reads up to len(dest) bytes at off and returns how many it read (short only at the end
// of the file).
func (ws *Workspace) Read(ctx context.Context, ino uint64, off int64, dest []byte) (int, error) {
	ws.mu.RLock()
	defer ws.mu.RUnlock()
	n, err := ws.inode(ctx, ino)
	if err != nil {
		return 0, err
	}
	if n.IsDir() {
		return 0, syscall.EISDIR
	}
	if off < 0 {
		return 0, syscall.EINVAL
	}
	if uint64(off) >= n.Size {
		return 0, nil
	}
	dest = dest[:min(uint64(len(dest)), n.Size-uint64(off))]
	if n.Inline {
		return copy(dest, n.Data[off:]), nil
	}
	done := 0
	var buf []byte
	for done < len(dest) {
		pos := uint64(off) + uint64(done)
		index, within := pos/BlockSize, int(pos%BlockSize)
		want := min(len(dest)-done, BlockSize-within)
		block, ok := ws.dirty[ino][index]
		if !ok {
			if block, err = ws.storedBlock(ctx, ino, index, buf[:0]); err != nil {
				return done, err
			}
			buf = block
		}
		got := 0
		if within < len(block) {
			got = copy(dest[done:done+want], block[within:])
		}
		clear(dest[done+got : done+want]) // hole or past the stored end of the block
		done += want
	}
	return done, nil
}

// write writes data at off; it buffers partial blocks and writes whole ones to the store.
func (ws *Workspace) write(ctx context.Context, ino uint64, off int64, data []byte) (int, error) {
	defer ws.e.op()()
	if off < 0 {
		return 0, syscall.EINVAL
	}
	end := uint64(off) + uint64(len(data))
	if end > MaxFileSize {
		return 0, syscall.EFBIG
	}
	if err := ws.e.st.CheckSpace(); err != nil {
		return 0, err
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	t, err := ws.begin()
	if err != nil {
		return 0, err
	}
	defer t.abort()
	n, err := t.inode(ctx, ino)
	if err != nil {
		return 0, err
	}
	if !n.IsRegular() {
		if n.IsDir() {
			return 0, syscall.EISDIR
		}
		return 0, syscall.EINVAL
	}
	now := ws.e.now().UnixNano()
	n.Mtime, n.Ctime = now, now
	if n.Inline && end <= InlineMax {
		if end > uint64(len(n.Data)) {
			n.Data = append(n.Data, make([]byte, end-uint64(len(n.Data)))...)
		}
		copy(n.Data[off:], data)
		n.Size = uint64(len(n.Data))
		if err := t.putInode(n); err != nil {
			return 0, err
		}
		return len(data), t.commit(false)
	}
	if err := ws.uninline(n); err != nil {
		return 0, err
	}
	for done := 0; done < len(data); {
		pos := uint64(off) + uint64(done)
		index, within := pos/BlockSize, int(pos%BlockSize)
		block, err := ws.dirtyBlock(ctx, ino, index, n.Size)
		if err != nil {
			return 0, err
		}
		done += copy(block[within:], data[done:])
	}
	n.Size = max(n.Size, end)
	// Blocks this write filled to their end are written out now: sequential writers then
	// hold at most one partial block in memory.
	if end%BlockSize == 0 || end/BlockSize > uint64(off)/BlockSize {
		for index := range ws.dirty[ino] {
			if (index+1)*BlockSize <= end && (index+1)*BlockSize > uint64(off) {
				if err := ws.writeBlock(ctx, t, n, index); err != nil {
					return 0, err
				}
			}
		}
	}
	if ws.dirtyBytes > dirtyLimit {
		if err := ws.flushFileLocked(ctx, t, n); err != nil {
			return 0, err
		}
	}
	if err := t.putInode(n); err != nil {
		return 0, err
	}
	return len(data), t.commit(false)
}

// uninline moves inline content into a dirty block.
func (ws *Workspace) uninline(n *Inode) error {
	if !n.Inline {
		return nil
	}
	if len(n.Data) > 0 {
		b := make([]byte, BlockSize)
		copy(b, n.Data)
		ws.setDirty(n.Ino, 0, b)
	}
	n.Inline, n.Data = false, nil
	return nil
}

func (ws *Workspace) setDirty(ino, index uint64, b []byte) {
	m := ws.dirty[ino]
	if m == nil {
		m = map[uint64][]byte{}
		ws.dirty[ino] = m
	}
	if _, ok := m[index]; !ok {
		ws.dirtyBytes += BlockSize
	}
	m[index] = b
}

// dirtyBlock returns the writable buffer of a block, loading the stored block on first use.
// size is the file's size before the write: a block wholly past it holds nothing stored
// (truncate deletes blocks past the end), so appending writers skip the lookup.
func (ws *Workspace) dirtyBlock(ctx context.Context, ino, index, size uint64) ([]byte, error) {
	if b, ok := ws.dirty[ino][index]; ok {
		return b, nil
	}
	b := make([]byte, BlockSize)
	if index*BlockSize < size {
		stored, err := ws.storedBlock(ctx, ino, index, nil)
		if err != nil {
			return nil, err
		}
		copy(b, stored)
	}
	ws.setDirty(ino, index, b)
	return b, nil
}

// writeBlock stores one dirty block (trimmed to the file size; all zeros become a hole).
func (ws *Workspace) writeBlock(ctx context.Context, t *txn, n *Inode, index uint64) error {
	b := ws.dirty[n.Ino][index]
	delete(ws.dirty[n.Ino], index)
	if len(ws.dirty[n.Ino]) == 0 {
		delete(ws.dirty, n.Ino)
	}
	ws.dirtyBytes -= BlockSize
	start := index * BlockSize
	if start >= n.Size {
		return t.del(blockKey(n.Ino, index))
	}
	b = b[:min(uint64(BlockSize), n.Size-start)]
	if isZero(b) {
		return t.del(blockKey(n.Ino, index))
	}
	id, err := ws.e.st.PutBatch(ctx, t.b, b)
	if err != nil {
		return err
	}
	return t.set(blockKey(n.Ino, index), id[:])
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func (ws *Workspace) flushFileLocked(ctx context.Context, t *txn, n *Inode) error {
	for _, index := range sortedKeys(ws.dirty[n.Ino]) {
		if err := ws.writeBlock(ctx, t, n, index); err != nil {
			return err
		}
	}
	return nil
}

// flushAllLocked writes every dirty block of the workspace to the store.
func (ws *Workspace) flushAllLocked(ctx context.Context, sync bool) error {
	if len(ws.dirty) == 0 {
		if sync {
			return ws.e.st.Sync()
		}
		return nil
	}
	t, err := ws.begin()
	if err != nil {
		return err
	}
	defer t.abort()
	for _, ino := range sortedKeys(ws.dirty) {
		n, err := t.inode(ctx, ino)
		if err != nil {
			delete(ws.dirty, ino)
			continue
		}
		if err := ws.flushFileLocked(ctx, t, n); err != nil {
			return err
		}
	}
	ws.dirtyBytes = 0
	return t.commit(sync)
}

// FlushAll writes all buffered data of the workspace into the repository and syncs it.
func (ws *Workspace) FlushAll(ctx context.Context) error {
	defer ws.e.op()()
	if ws.readOnly {
		return nil
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return ws.flushAllLocked(ctx, true)
}

// Fsync makes the file's data and all metadata written before it durable.
func (ws *Workspace) Fsync(ctx context.Context, ino uint64) error {
	defer ws.e.op()()
	if ws.readOnly {
		return nil
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if len(ws.dirty[ino]) == 0 {
		return ws.e.st.Sync()
	}
	return ws.writeFileLocked(ctx, ino, true)
}

// truncateLocked sets the size of regular file n (the caller stores n).
func (ws *Workspace) truncateLocked(ctx context.Context, t *txn, n *Inode, size uint64) error {
	if size > MaxFileSize {
		return syscall.EFBIG
	}
	if n.Inline {
		if size <= InlineMax {
			if size < uint64(len(n.Data)) {
				n.Data = n.Data[:size]
			} else {
				n.Data = append(n.Data, make([]byte, size-uint64(len(n.Data)))...)
			}
			n.Size = size
			return nil
		}
		if err := ws.uninline(n); err != nil {
			return err
		}
	}
	if size < n.Size {
		keep := (size + BlockSize - 1) / BlockSize // blocks [0, keep) stay
		for index := range ws.dirty[n.Ino] {
			if index >= keep {
				delete(ws.dirty[n.Ino], index)
				ws.dirtyBytes -= BlockSize
			}
		}
		var drop [][]byte
		from := blockKey(n.Ino, keep)
		if err := ws.scan(ctx, from, prefixEnd(blockPrefix(n.Ino)), func(k, v []byte) error {
			drop = append(drop, append([]byte(nil), k...))
			return nil
		}); err != nil {
			return err
		}
		for _, k := range drop {
			if err := t.del(k); err != nil {
				return err
			}
		}
		if within := size % BlockSize; within != 0 {
			b, err := ws.dirtyBlock(ctx, n.Ino, size/BlockSize, n.Size)
			if err != nil {
				return err
			}
			clear(b[within:])
		}
	}
	n.Size = size
	if size == 0 {
		delete(ws.dirty, n.Ino)
		n.Inline, n.Data = true, nil
	}
	return nil
}
