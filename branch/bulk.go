package branch

import (
	"context"
	"fmt"

	"github.com/agentfs/agentfs/branch/tree"
	"github.com/agentfs/agentfs/store"
)

// BulkBranch creates branch name holding a fresh tree of files small regular files (file i
// holds content(i), at most InlineMax bytes, kept inline) spread over directories of perDir
// files each (d00000/f000000, ...). The tree is written straight into tree nodes and one
// commit: no overlay, no transaction per file. It exists so that benchmarks and tests can
// build trees of a million files in seconds; the result is an ordinary branch whose base is
// the returned commit.
func (e *Engine) BulkBranch(ctx context.Context, name string, files, perDir int, content func(i int) []byte) (store.ID, error) {
	defer e.op()()
	if err := ValidateName("branch", name); err != nil {
		return store.ID{}, err
	}
	if perDir <= 0 {
		perDir = 1000
	}
	dirs := (files + perDir - 1) / perDir
	// Reserve the inode numbers: persisted before any inode that uses them.
	e.inoMu.Lock()
	rb := e.db.NewBatch()
	first, err := e.counter(rb, keyNextIno, uint64(dirs+files))
	if err == nil {
		err = e.st.CommitDurable(rb)
	}
	rb.Close()
	e.inoMu.Unlock()
	if err != nil {
		return store.ID{}, err
	}
	now := e.now().UnixNano()
	dirIno := func(d int) uint64 { return first + uint64(d) }
	fileIno := func(i int) uint64 { return first + uint64(dirs) + uint64(i) }
	dname := func(d int) string { return fmt.Sprintf("d%05d", d) }
	fname := func(i int) string { return fmt.Sprintf("f%07d", i) }

	muts := make([]tree.Mutation, 0, 2*(files+dirs)+1)
	// 'd' keys: the root's entries, then each directory's, in inode order.
	for d := 0; d < dirs; d++ {
		muts = append(muts, tree.Mutation{Key: direntKey(RootIno, dname(d)), Value: encodeDirent(dirIno(d), 0o40755)})
	}
	for d := 0; d < dirs; d++ {
		for i := d * perDir; i < min(files, (d+1)*perDir); i++ {
			muts = append(muts, tree.Mutation{Key: direntKey(dirIno(d), fname(i)), Value: encodeDirent(fileIno(i), 0o100644)})
		}
	}
	// 'i' keys: the root, the directories, the files.
	root := &Inode{Ino: RootIno, Mode: 0o40755, Nlink: uint32(2 + dirs), Atime: now, Mtime: now, Ctime: now, Parent: RootIno}
	muts = append(muts, tree.Mutation{Key: inodeKey(RootIno), Value: encodeInode(root)})
	for d := 0; d < dirs; d++ {
		n := &Inode{Ino: dirIno(d), Mode: 0o40755, Nlink: 2, Atime: now, Mtime: now, Ctime: now, Parent: RootIno, Name: dname(d)}
		muts = append(muts, tree.Mutation{Key: inodeKey(n.Ino), Value: encodeInode(n)})
	}
	for i := 0; i < files; i++ {
		data := content(i)
		if len(data) > InlineMax {
			return store.ID{}, fmt.Errorf("bulk branch: file %d has %d bytes, more than %d", i, len(data), InlineMax)
		}
		n := &Inode{Ino: fileIno(i), Mode: 0o100644, Nlink: 1, Size: uint64(len(data)), Atime: now, Mtime: now, Ctime: now,
			Parent: dirIno(i / perDir), Name: fname(i), Inline: true, Data: data}
		muts = append(muts, tree.Mutation{Key: inodeKey(n.Ino), Value: encodeInode(n)})
	}
	rootID, err := e.tree.Apply(ctx, store.ID{}, muts)
	if err != nil {
		return store.ID{}, err
	}
	muts = nil

	defer e.lockBranch(name)()
	if _, ok, err := e.getKey(refKey(name)); err != nil {
		return store.ID{}, err
	} else if ok {
		return store.ID{}, fmt.Errorf("branch %q %w", name, ErrExists)
	}
	b := e.db.NewBatch()
	defer b.Close()
	cid, err := e.writeCommit(ctx, b, &Commit{Root: rootID, Time: e.now().UTC(), Branch: name, Message: fmt.Sprintf("bulk tree of %d files", files)})
	if err != nil {
		return store.ID{}, err
	}
	id, err := e.newBranchID()
	if err != nil {
		return store.ID{}, err
	}
	if err := b.Set(refKey(name), encodeBranch(&Branch{Name: name, ID: id, Base: cid, Created: e.now().UTC()}), nil); err != nil {
		return store.ID{}, err
	}
	if err := e.st.CommitDurable(b); err != nil {
		return store.ID{}, err
	}
	return cid, nil
}
