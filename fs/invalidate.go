package fs

import (
	"sync"

	"github.com/agentfs/agentfs/work"
)

// The kernel caches entries, negative entries and attributes for cacheTimeout, much longer
// than a change may stay unseen, so every change to a mounted workspace that does not come
// through the mount itself must invalidate explicitly:
//
//   - a rollback, merge, revert, pull, import or a file written through the control API
//     replaces content under the mount: the workspace's reset hook (OnReset, NotifyChanged)
//     runs invalidateAll (reset.go);
//   - a change made through another mount of the same branch in this process: every
//     mutating operation of a mount tells the other mounts of its workspace what it changed
//     (below), and they invalidate those entries and inodes in their kernels.
//
// A change through the mount itself needs nothing: the kernel updates its caches from the
// reply (and drops the attributes of a written file itself).

// siblings lists the mounts of each workspace in this process.
var siblings = struct {
	sync.Mutex
	m map[*work.Workspace][]*fsys
}{m: map[*work.Workspace][]*fsys{}}

func (f *fsys) register() {
	siblings.Lock()
	siblings.m[f.ws] = append(siblings.m[f.ws], f)
	siblings.Unlock()
}

func (f *fsys) unregister() {
	siblings.Lock()
	defer siblings.Unlock()
	list := siblings.m[f.ws]
	for i, g := range list {
		if g == f {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(siblings.m, f.ws)
	} else {
		siblings.m[f.ws] = list
	}
}

// others returns the other mounts of f's workspace.
func (f *fsys) others() []*fsys {
	siblings.Lock()
	defer siblings.Unlock()
	list := siblings.m[f.ws]
	if len(list) < 2 {
		return nil
	}
	out := make([]*fsys, 0, len(list)-1)
	for _, g := range list {
		if g != f {
			out = append(out, g)
		}
	}
	return out
}

// change is what one operation changed: the attributes or content of inodes, and names in
// directories.
type change struct {
	inodes  []uint64
	entries []entryRef
}

type entryRef struct {
	dir  uint64
	name string
}

// changed tells the other mounts of the workspace about c. They invalidate asynchronously:
// a notification is never sent from inside a FUSE request (the kernel may hold the locks
// the notification needs).
func (f *fsys) changed(what func() change) {
	others := f.others()
	if len(others) == 0 {
		return
	}
	c := what()
	for _, g := range others {
		go g.invalidate(c)
	}
}

// invalidate drops what the kernel may cache of c's inodes and names.
func (f *fsys) invalidate(c change) {
	if f.closed.Load() {
		return
	}
	f.blocks.forget(c.inodes...)
	for _, ino := range c.inodes {
		if n := f.known(ino); n != nil {
			f.notify("content", n.NotifyContent(0, 0))
		}
	}
	for _, e := range c.entries {
		if d := f.known(e.dir); d != nil {
			f.notify("entry", d.NotifyEntry(e.name))
		}
	}
}

// known returns the node of ino if the kernel knows it (between LOOKUP and FORGET).
func (f *fsys) known(ino uint64) *node {
	if ino == work.RootIno {
		return f.root
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nodes[ino]
}

// entryChange is the change of a name in dir n (create, unlink, ...): the name, the
// directory's attributes (mtime, link count) and the inodes named.
func (n *node) entryChange(name string, inodes ...uint64) change {
	return change{inodes: append(inodes, n.ino()), entries: []entryRef{{n.ino(), name}}}
}

// childIno returns the inode number the kernel knows under name in n, or 0.
func (n *node) childIno(name string) uint64 {
	if c := n.GetChild(name); c != nil {
		return c.StableAttr().Ino
	}
	return 0
}

// inodeChanged tells the other mounts that n's attributes or content changed.
func (n *node) inodeChanged() {
	n.fs.changed(func() change { return change{inodes: []uint64{n.ino()}} })
}

// nameChanged tells the other mounts that name in n changed (created, removed, replaced),
// with the attributes of n and of the inodes given.
func (n *node) nameChanged(name string, inodes ...uint64) {
	n.fs.changed(func() change { return n.entryChange(name, inodes...) })
}
