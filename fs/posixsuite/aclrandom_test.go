package posixsuite

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	afs "github.com/agentfs/agentfs/fs"
)

// TestACLRandomDifferential applies the same random sequence of ACL operations (access and
// default ACLs set raw through setxattr, removexattr, chmod, and creation of files,
// directories and fifos with random modes and umasks in directories that may hold default
// ACLs) to an agentfs mount and to an ext4 directory, and after every step compares the
// results, the modes and the raw ACL xattrs of every path. The seed is printed;
// AGENTFS_ACL_SEED replays it, AGENTFS_ACL_STEPS sets the length (default 400).
func TestACLRandomDifferential(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (ACLs naming other users)")
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("AGENTFS_ACL_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	steps := 400
	if s := os.Getenv("AGENTFS_ACL_STEPS"); s != "" {
		steps, _ = strconv.Atoi(s)
	}
	t.Logf("seed %d (AGENTFS_ACL_SEED=%d replays it)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	mnt, _ := mountBranch(t, afs.Options{})
	host := reachableDir(t, "agentfs-acl-host-")
	if err := unix.Setxattr(host, "system.posix_acl_default", randomACL(rng, true), 0); err != nil {
		t.Fatalf("the host directory has no ACL support, so it cannot be the reference: %v", err)
	}
	unix.Removexattr(host, "system.posix_acl_default")
	roots := []string{mnt, host}

	paths := []string{"."}
	dirs := []string{"."}
	for i := range steps {
		p := paths[rng.IntN(len(paths))]
		d := dirs[rng.IntN(len(dirs))]
		var desc string
		var op func(root string) error
		switch k := rng.IntN(10); {
		case k < 3:
			v := randomACL(rng, rng.IntN(4) == 0)
			desc = fmt.Sprintf("setxattr access %s %x", p, v)
			op = func(r string) error { return unix.Setxattr(filepath.Join(r, p), "system.posix_acl_access", v, 0) }
		case k < 4:
			v := randomACL(rng, rng.IntN(4) == 0)
			desc = fmt.Sprintf("setxattr default %s %x", p, v)
			op = func(r string) error { return unix.Setxattr(filepath.Join(r, p), "system.posix_acl_default", v, 0) }
		case k < 5:
			name := []string{"system.posix_acl_access", "system.posix_acl_default"}[rng.IntN(2)]
			desc = fmt.Sprintf("removexattr %s %s", name, p)
			op = func(r string) error { return unix.Removexattr(filepath.Join(r, p), name) }
		case k < 6:
			m := uint32(rng.IntN(0o10000))
			if p == "." {
				m |= 0o700 // keep the test's own way in
			}
			desc = fmt.Sprintf("chmod %04o %s", m, p)
			op = func(r string) error { return unix.Chmod(filepath.Join(r, p), m) }
		default:
			name := filepath.Join(d, fmt.Sprintf("n%d", i))
			m, umask, kind := uint32(rng.IntN(0o1000)), rng.IntN(0o1000), rng.IntN(3)
			desc = fmt.Sprintf("create kind %d %s mode %04o umask %04o", kind, name, m, umask)
			op = func(r string) error {
				old := unix.Umask(umask)
				defer unix.Umask(old)
				full := filepath.Join(r, name)
				switch kind {
				case 0:
					fd, err := unix.Open(full, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, m)
					if err == nil {
						unix.Close(fd)
					}
					return err
				case 1:
					return unix.Mkdir(full, m|0o700) // the test must be able to enter it
				default:
					return unix.Mknod(full, unix.S_IFIFO|m, 0)
				}
			}
			paths = append(paths, name)
			if kind == 1 {
				dirs = append(dirs, name)
			}
		}
		e0, e1 := op(roots[0]), op(roots[1])
		if fmt.Sprint(e0) != fmt.Sprint(e1) {
			t.Fatalf("step %d: %s: mount %v, ext4 %v", i, desc, e0, e1)
		}
		for _, q := range paths {
			if a, b := describe(filepath.Join(roots[0], q)), describe(filepath.Join(roots[1], q)); a != b {
				t.Fatalf("step %d: %s: %s differs:\n  mount %s\n  ext4  %s", i, desc, q, a, b)
			}
		}
	}
	t.Logf("%d steps, %d paths", steps, len(paths))
}

// randomACL returns a valid ACL xattr (named entries sorted by id, as libacl writes them),
// or, when empty, one with no entries (which removes the ACL).
func randomACL(rng *rand.Rand, empty bool) []byte {
	if empty {
		return []byte{2, 0, 0, 0}
	}
	perm := func() uint32 { return uint32(rng.IntN(8)) }
	ids := func() []uint32 {
		var out []uint32
		for _, id := range []uint32{0, 1000, 1001, 65534} {
			if rng.IntN(3) == 0 {
				out = append(out, id)
			}
		}
		return out
	}
	e := []uint32{1, perm(), none}
	users, groups := ids(), ids()
	for _, u := range users {
		e = append(e, 2, perm(), u)
	}
	e = append(e, 4, perm(), none)
	for _, g := range groups {
		e = append(e, 8, perm(), g)
	}
	if len(users)+len(groups) > 0 || rng.IntN(3) == 0 {
		e = append(e, 0x10, perm(), none)
	}
	e = append(e, 0x20, perm(), none)
	return acl(e...)
}

// describe is a path's type, mode and raw ACL xattrs.
func describe(p string) string {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return err.Error()
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%07o", st.Mode)
	for _, name := range []string{"system.posix_acl_access", "system.posix_acl_default"} {
		v := make([]byte, 1024)
		n, err := unix.Getxattr(p, name, v)
		if err != nil {
			fmt.Fprintf(&b, " %s:%v", name[13:], err)
		} else {
			fmt.Fprintf(&b, " %s:%x", name[13:], v[:n])
		}
	}
	return b.String()
}
