package work

import "sync"

// freshInodes answers "absent" for the dirents and extended attributes of inodes this
// workspace created, without asking Pebble.
//
// An inode number comes from the repository's allocator, so no tree and no overlay held a key
// of it before this workspace created it; from then on every key of it is written through
// this workspace's transactions (Txn.commit) or folds (CacheLocked), which record here the
// dirent and xattr keys they make present. A key of a fresh inode not recorded is therefore
// absent. Without this, each file a `tar -x` or a package install creates cost two or three
// Pebble misses (the kernel's LOOKUP of the new name, the default ACL of its directory, the
// access ACL a chmod updates), and a miss reads sstable blocks a compaction has just rewritten:
// 380 MB of block reads for a 20k-file install.
//
// Whatever moves the content under the workspace (rollback, merge, pull, eviction) purges the
// key cache and forgets the fresh inodes with it. The set is bounded: past maxFreshKeys it
// starts over, which only costs the misses it saved.
type freshInodes struct {
	mu      sync.Mutex
	inos    map[uint64]struct{}
	present map[string]struct{} // dirent and xattr keys of fresh inodes that exist
}

const maxFreshKeys = 128 << 10

// absent reports whether k is a dirent or xattr key of a fresh inode that no write created.
func (f *freshInodes) absent(k []byte) bool {
	if len(k) < 9 || (k[0] != KindDirent && k[0] != KindXattr) {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.inos[KeyIno(k)]; !ok {
		return false
	}
	_, ok := f.present[string(k)]
	return !ok
}

// add records inodes just created (their creating transaction has committed).
func (f *freshInodes) add(inos []uint64) {
	if len(inos) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.inos == nil || len(f.inos)+len(f.present) >= maxFreshKeys {
		f.inos, f.present = map[uint64]struct{}{}, map[string]struct{}{}
	}
	for _, ino := range inos {
		f.inos[ino] = struct{}{}
	}
}

// note records that k now exists (present) or not. Every committed write goes through it.
func (f *freshInodes) note(k string, present bool) {
	if len(k) < 9 || (k[0] != KindDirent && k[0] != KindXattr) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.inos[KeyIno([]byte(k))]; !ok {
		return
	}
	if present {
		f.present[k] = struct{}{}
	} else {
		delete(f.present, k)
	}
}

// forget drops every fresh inode (the content under the workspace moved).
func (f *freshInodes) forget() {
	f.mu.Lock()
	f.inos, f.present = nil, nil
	f.mu.Unlock()
}
