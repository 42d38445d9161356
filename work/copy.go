package work

import (
	"context"
	"syscall"
)

// copyGroup is how many blocks one transaction of CopyRange shares: its batch stays small
// (a block reference and the source's working pages of those blocks) and the lock is held
// briefly.
const copyGroup = 256

// CopyRange copies length bytes of regular file src from offIn into regular file dst at
// offOut (copy_file_range) and returns how many it copied: fewer only when src ends first.
// Whole 64 KiB blocks at the same offset within a block on both sides are shared, not
// copied: dst's block reference names the block src's names, and src's working pages over
// that block are copied as pages. No file data is read, hashed or stored for them, so a copy
// inside a branch costs a few bytes per 64 KiB. The edges, and copies whose offsets differ
// within a block, are copied as bytes. A copy within one file whose ranges overlap is
// EINVAL, as copy_file_range(2) says. since is the descriptor's workspace generation
// (WriteSince).
func (ws *Workspace) CopyRange(ctx context.Context, since *uint64, src uint64, offIn int64, dst uint64, offOut int64, length int64) (int64, error) {
	if offIn < 0 || offOut < 0 || length < 0 {
		return 0, syscall.EINVAL
	}
	in, err := ws.GetAttr(ctx, src)
	if err != nil {
		return 0, err
	}
	if in.IsDir() {
		return 0, syscall.EISDIR
	}
	if !in.IsRegular() {
		return 0, syscall.EINVAL
	}
	if uint64(offIn) >= in.Size {
		return 0, nil
	}
	length = min(length, int64(in.Size)-offIn)
	if uint64(offOut)+uint64(length) > MaxFileSize {
		return 0, syscall.EFBIG
	}
	if src == dst && offIn < offOut+length && offOut < offIn+length {
		return 0, syscall.EINVAL
	}
	// Bytes up to the first block boundary, then whole blocks when both sides are aligned
	// alike, then the rest as bytes.
	head := min(length, (BlockSize-offIn%BlockSize)%BlockSize)
	if in.Inline || offIn%BlockSize != offOut%BlockSize {
		head = length
	}
	if err := ws.copyBytes(ctx, since, src, offIn, dst, offOut, head); err != nil {
		return 0, err
	}
	done := head
	for done < length {
		blocks := (length - done) / BlockSize
		// The source's last block, partly used, is shared too when the copy ends at the
		// source's end and nothing of dst follows it: what lies past src's end reads as
		// zeros, and so will what lies past dst's new end.
		tail := false
		if blocks < copyGroup && (length-done)%BlockSize != 0 && uint64(offIn+length) == in.Size {
			out, err := ws.GetAttr(ctx, dst)
			if err != nil {
				return done, err
			}
			tail = out.Size <= uint64(offOut+length)
		}
		n := min(blocks, copyGroup)
		if n == 0 && !tail {
			break
		}
		shared := n * BlockSize
		if tail {
			shared = length - done
		}
		k, err := ws.shareBlocks(ctx, since, src, uint64(offIn+done)/BlockSize, dst, uint64(offOut+done)/BlockSize, uint64(n), tail, uint64(offOut+done+shared))
		if err != nil {
			return done, err
		}
		if k == 0 {
			break // dst grew meanwhile: the tail goes as bytes
		}
		done += min(int64(k)*BlockSize, length-done)
	}
	if err := ws.copyBytes(ctx, since, src, offIn+done, dst, offOut+done, length-done); err != nil {
		return done, err
	}
	return length, nil
}

// copyBytes copies n bytes by reading and writing them (WriteSince: the quota applies).
func (ws *Workspace) copyBytes(ctx context.Context, since *uint64, src uint64, offIn int64, dst uint64, offOut int64, n int64) error {
	buf := make([]byte, min(n, 1<<20))
	for done := int64(0); done < n; {
		k, err := ws.Read(ctx, src, offIn+done, buf[:min(int64(len(buf)), n-done)])
		if err != nil {
			return err
		}
		if k == 0 {
			return nil // src shrank meanwhile
		}
		if _, err := ws.WriteSince(ctx, since, dst, offOut+done, buf[:k]); err != nil {
			return err
		}
		done += int64(k)
	}
	return nil
}

// shareBlocks makes blocks [bo, bo+n) of dst (and block bo+n when tail) hold what blocks
// [bi, bi+n) (and bi+n) of src hold, in one transaction, and grows dst to at least end. It
// returns how many blocks it shared (the tail is left out when dst now extends past end).
// The source's working pages count against the quota, its stored blocks do not (they are
// shared, not exclusive to anyone).
func (ws *Workspace) shareBlocks(ctx context.Context, since *uint64, src, bi, dst, bo, n uint64, tail bool, end uint64) (uint64, error) {
	if tail {
		n++
	}
	var pageBytes int64
	if err := ws.pageSpan(src, bi*pagesPerBlock, (bi+n)*pagesPerBlock-1, func(uint64, []byte) { pageBytes += PageSize }); err != nil {
		return 0, err
	}
	admitted, err := ws.admit(ctx, Usage{Bytes: pageBytes})
	if err != nil {
		return 0, err
	}
	k, err := ws.shareBlocksLocked(ctx, since, src, bi, dst, bo, n, tail, end)
	admitted(err == nil)
	return k, err
}

func (ws *Workspace) shareBlocksLocked(ctx context.Context, since *uint64, src, bi, dst, bo, n uint64, tail bool, end uint64) (uint64, error) {
	defer ws.env.Op()()
	if err := ws.env.Store.CheckSpace(); err != nil {
		return 0, err
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if since != nil && *since != ws.gen {
		return 0, syscall.ESTALE
	}
	t, err := ws.begin()
	if err != nil {
		return 0, err
	}
	defer t.abort()
	out, err := t.inode(ctx, dst)
	if err != nil {
		return 0, err
	}
	if !out.IsRegular() {
		if out.IsDir() {
			return 0, syscall.EISDIR
		}
		return 0, syscall.EINVAL
	}
	if tail && out.Size > end {
		if n--; n == 0 {
			return 0, nil
		}
		end = (bo + n) * BlockSize
	}
	if err := t.uninline(out); err != nil {
		return 0, err
	}
	// The source's pages first (read from the committed overlay, before this transaction
	// drops dst's pages: with src == dst the ranges do not overlap, so neither sees the other).
	type page struct {
		index uint64
		v     []byte
	}
	var pages []page
	if err := ws.pageSpan(src, bi*pagesPerBlock, (bi+n)*pagesPerBlock-1, func(p uint64, v []byte) {
		pages = append(pages, page{bo*pagesPerBlock + p - bi*pagesPerBlock, append([]byte(nil), v...)})
	}); err != nil {
		return 0, err
	}
	for i := uint64(0); i < n; i++ {
		ref, ok, err := t.get(ctx, BlockKey(src, bi+i))
		if err != nil {
			return 0, err
		}
		if ok {
			err = t.set(BlockKey(dst, bo+i), ref)
		} else {
			err = t.del(BlockKey(dst, bo+i))
		}
		if err != nil {
			return 0, err
		}
	}
	if err := t.dropPageRange(dst, bo*pagesPerBlock, (bo+n)*pagesPerBlock); err != nil {
		return 0, err
	}
	for _, p := range pages {
		if err := t.setPage(dst, p.index, p.v); err != nil {
			return 0, err
		}
	}
	now := ws.env.Now().UnixNano()
	out.Mtime, out.Ctime = now, now
	out.Size = max(out.Size, end)
	if err := t.putInode(out); err != nil {
		return 0, err
	}
	return n, t.commit(false)
}

// dropPageRange deletes the pages [from, to) of ino, one by one and only those that exist
// (a copy into a new file drops none): range deletions fragment every later read of the
// memtable (see dropPages).
func (t *Txn) dropPageRange(ino, from, to uint64) error {
	// A checkpoint's journal needs no more precision than "from on" (carry.go).
	t.drops = append(t.drops, pageID{ino, from})
	var drop []uint64 // pages staged in this transaction (uninline's), then stored ones
	for id := range t.pages {
		if id.ino == ino && id.index >= from && id.index < to {
			delete(t.pages, id)
			drop = append(drop, id.index)
		}
	}
	if err := t.ws.pageSpan(ino, from, to-1, func(p uint64, _ []byte) { drop = append(drop, p) }); err != nil {
		return err
	}
	for _, p := range drop {
		if err := t.b.Delete(t.ws.overlayKey(pageKey(ino, p)), nil); err != nil {
			return err
		}
	}
	return nil
}
