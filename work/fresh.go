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
	mu   sync.Mutex
	inos map[uint64]map[string]struct{} // fresh inode -> its dirent and xattr keys that exist
	keys int                            // fresh inodes plus recorded keys, for the bound
}

const maxFreshKeys = 128 << 10

// tracked reports whether k is a dirent or xattr key, the kinds recorded.
func tracked(k []byte) bool {
	return len(k) >= 9 && (k[0] == KindDirent || k[0] == KindXattr)
}

// absent reports whether k is a dirent or xattr key of a fresh inode that no write created.
func (f *freshInodes) absent(k []byte) bool {
	if !tracked(k) {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	present, ok := f.inos[KeyIno(k)]
	if !ok {
		return false
	}
	_, ok = present[string(k)]
	return !ok
}

// list returns the keys of kind (KindDirent: the entries of directory ino; KindXattr: its
// extended attributes) that exist, and whether ino is fresh: only then is the list complete.
func (f *freshInodes) list(ino uint64, kind byte) ([]string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	present, ok := f.inos[ino]
	if !ok {
		return nil, false
	}
	var out []string
	for k := range present {
		if k[0] == kind {
			out = append(out, k)
		}
	}
	return out, true
}

// add records inodes just created (their creating transaction has committed).
func (f *freshInodes) add(inos []uint64) {
	if len(inos) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.inos == nil || f.keys+len(inos) > maxFreshKeys {
		f.inos, f.keys = map[uint64]map[string]struct{}{}, 0
	}
	for _, ino := range inos {
		if _, ok := f.inos[ino]; !ok {
			f.inos[ino] = map[string]struct{}{}
			f.keys++
		}
	}
}

// note records that k now exists (present) or not. Every committed write goes through it.
func (f *freshInodes) note(k string, present bool) {
	if !tracked([]byte(k)) && (len(k) < 9 || k[0] != KindInode) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ino := KeyIno([]byte(k))
	keys, ok := f.inos[ino]
	if !ok {
		return
	}
	_, had := keys[k]
	switch {
	case k[0] == KindInode:
		if !present { // removed: its number is never used again
			f.keys -= 1 + len(keys)
			delete(f.inos, ino)
		}
	case present && !had:
		keys[k] = struct{}{}
		if f.keys++; f.keys > maxFreshKeys {
			f.inos, f.keys = nil, 0 // start over: forgetting is always safe
		}
	case !present && had:
		delete(keys, k)
		f.keys--
	}
}

// forget drops every fresh inode (the content under the workspace moved).
func (f *freshInodes) forget() {
	f.mu.Lock()
	f.inos, f.keys = nil, 0
	f.mu.Unlock()
}
