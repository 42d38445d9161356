package work

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"
)

// TestFreshInodesAnswerLikePebble: the fresh-inode shortcut (fresh.go) never answers "absent"
// for a key that exists, and the overlay index (overlayindex.go) never sends a read of a key
// the overlay holds to the base tree. Random creates, mkdirs, hard links, renames, unlinks, rmdirs and xattr
// changes run on a workspace whose key cache is dropped at random moments (as the LRU drops
// entries under load), and folds move the writes into the base now and then. After each
// step every dirent and xattr key of every inode and name the test used must read the same
// through get (cache, fresh inodes) as straight from Pebble and the tree, and a removed
// inode must have left no key behind (its removal and rmdir's emptiness check use the fresh
// inodes' key lists instead of a scan). Seeded:
// AGENTFS_FRESH_SEED replays a run.
func TestFreshInodesAnswerLikePebble(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("AGENTFS_FRESH_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (AGENTFS_FRESH_SEED replays it)", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	ctx := context.Background()
	ws := newTestWorkspace(t)

	dirs := []uint64{RootIno}
	inos := []uint64{RootIno}
	names := []string{"a", "b", "c", "d", "e"}
	xnames := []string{"user.x", "user.y", capabilityXattr, "system.posix_acl_access", "system.posix_acl_default"}
	pick := func(s []uint64) uint64 { return s[rng.IntN(len(s))] }
	pickName := func() string { return names[rng.IntN(len(names))] }

	check := func(step int, op string) {
		t.Helper()
		for _, ino := range inos {
			var keys [][]byte
			for _, n := range names {
				keys = append(keys, DirentKey(ino, n))
			}
			for _, x := range xnames {
				keys = append(keys, xattrKey(ino, x))
			}
			_, live, err := ws.getDirect(ctx, InodeKey(ino))
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				v, ok, err := ws.get(ctx, k)
				if err != nil {
					t.Fatal(err)
				}
				wv, wok, err := ws.getDirect(ctx, k)
				if err != nil {
					t.Fatal(err)
				}
				if ok != wok || !bytes.Equal(v, wv) {
					t.Fatalf("seed %d, step %d (%s): key %q reads %v %x, Pebble and the tree have %v %x",
						seed, step, op, k, ok, v, wok, wv)
				}
				if wok && !live { // rmdir of a non-empty directory, or an unlink that left keys
					t.Fatalf("seed %d, step %d (%s): inode %d is gone but key %q is left", seed, step, op, ino, k)
				}
			}
		}
	}

	steps := 600
	if testing.Short() {
		steps = 200
	}
	for step := range steps {
		var op string
		switch r := rng.IntN(100); {
		case r < 20:
			op = "create"
			if n, err := ws.Create(ctx, pick(dirs), pickName(), Attr{Mode: 0o644}); err == nil {
				inos = append(inos, n.Ino)
			}
		case r < 32:
			op = "mkdir"
			if n, err := ws.Mkdir(ctx, pick(dirs), pickName(), Attr{Mode: 0o755}); err == nil {
				inos, dirs = append(inos, n.Ino), append(dirs, n.Ino)
			}
		case r < 40:
			op = "link"
			ws.Link(ctx, pick(inos), pick(dirs), pickName())
		case r < 52:
			op = "rename"
			ws.Rename(ctx, pick(dirs), pickName(), pick(dirs), pickName(), 0)
		case r < 60:
			op = "unlink"
			ws.Unlink(ctx, pick(dirs), pickName())
		case r < 64:
			op = "rmdir"
			ws.Rmdir(ctx, pick(dirs), pickName())
		case r < 76:
			op = "setxattr"
			x := xnames[rng.IntN(2)] // user names: ACL names must hold ACLs
			if rng.IntN(3) == 0 {
				x = capabilityXattr
			}
			ws.SetXattr(ctx, pick(inos), x, []byte(fmt.Sprint(step)), 0)
		case r < 82:
			op = "removexattr"
			ws.RemoveXattr(ctx, pick(inos), xnames[rng.IntN(3)])
		case r < 88:
			op = "chmod"
			mode := uint32(rng.IntN(0o1000))
			ws.SetAttr(ctx, pick(inos), SetAttr{Mode: &mode})
		case r < 96:
			op = "drop the key cache"
			ws.cache.Purge()
		default:
			op = "checkpoint: fold into the base, continue in a new overlay"
			root, _, err := ws.fold(ctx)
			if err != nil {
				t.Fatal(err)
			}
			ws.mu.Lock()
			ws.SetBaseLocked(root, ws.base)
			ws.SetOverlayLocked(ws.id + 1)
			ws.mu.Unlock()
		}
		check(step, op)
	}
	ws.ovl.mu.Lock()
	state := ws.ovl.state
	ws.ovl.mu.Unlock()
	if state != indexBuilt {
		t.Fatalf("overlay index state %d after %d steps: the test no longer covers it", state, steps)
	}
	if len(ws.fresh.inos) == 0 {
		t.Fatalf("no inode is fresh after %d steps: the test no longer covers the shortcut", steps)
	}
}
