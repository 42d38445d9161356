package posixsuite

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/agentfs/agentfs/fs"
)

// privScript performs, as the user it runs as, each [op, path, source] of argv[1] (JSON)
// and prints the errno name of each ("" for success).
const privScript = `
import errno, json, mmap, os, stat, struct, sys
def acl():  # owner rwx, user 1001 rw, group rw, mask rwx, other rw
    e = [(1, 7, 0xffffffff), (2, 6, 1001), (4, 6, 0xffffffff), (0x10, 7, 0xffffffff), (0x20, 6, 0xffffffff)]
    return struct.pack('<I', 2) + b''.join(struct.pack('<HHI', *x) for x in e)
def run(op, p, src):
    if op == 'append':
        fd = os.open(p, os.O_WRONLY | os.O_APPEND); os.write(fd, b'more'); os.close(fd)
    elif op == 'pwrite':
        fd = os.open(p, os.O_WRONLY); os.pwrite(fd, b'X', 0); os.close(fd)
    elif op == 'truncate':
        os.truncate(p, 1)
    elif op == 'otrunc':
        os.close(os.open(p, os.O_WRONLY | os.O_TRUNC))
    elif op == 'ftruncate':
        fd = os.open(p, os.O_WRONLY); os.ftruncate(fd, 3); os.close(fd)
    elif op == 'fallocate':
        fd = os.open(p, os.O_WRONLY); os.posix_fallocate(fd, 0, 65536); os.close(fd)
    elif op == 'mmap':
        fd = os.open(p, os.O_RDWR); m = mmap.mmap(fd, 0); m[0] = ord('Z'); m.flush(); m.close(); os.close(fd)
    elif op == 'copy_file_range':
        s = os.open(src, os.O_RDONLY); d = os.open(p, os.O_WRONLY)
        os.copy_file_range(s, d, 4, 0, 0); os.close(s); os.close(d)
    elif op == 'chgrp-own':
        os.chown(p, -1, os.getgid())
    elif op == 'chown-1000':
        os.chown(p, 1000, 1000)
    elif op == 'chmod-same':
        os.chmod(p, stat.S_IMODE(os.stat(p).st_mode))
    elif op == 'setacl':
        os.setxattr(p, 'system.posix_acl_access', acl())
    else:
        raise Exception('unknown op ' + op)
out = []
for op, p, src in json.loads(sys.argv[1]):
    try:
        run(op, p, src); out.append('')
    except OSError as e:
        out.append(errno.errorcode.get(e.errno, str(e.errno)))
print(json.dumps(out))
`

// TestPrivilegesDifferential: write, truncate, fallocate, mmap, copy_file_range, chown,
// chmod and setting an ACL, by root, the owner (with and without the file's group as a
// supplementary group) and another user (in the file's group or not), on files with every
// combination of set-user-ID, set-group-ID, group execute and security.capability, leave the
// same mode, size and capability on the mount (KILLPRIV_V2: the daemon drops privileges,
// fs/killpriv.go; ACLs, fs/acl.go) as on a plain directory of the host. It found 122
// differences: fallocate and copy_file_range kept set-ID bits, supplementary groups were
// not counted, a chown by an owner outside the group kept set-group-ID, and a write through
// mmap dropped security.capability.
func TestPrivilegesDifferential(t *testing.T) {
	needRoot(t)
	if _, err := os.Stat("/usr/bin/python3"); err != nil { // a user other than root runs it
		if os.Getenv("AGENTFS_REQUIRE_TOOLS") == "1" {
			t.Fatal("/usr/bin/python3 required (AGENTFS_REQUIRE_TOOLS=1)")
		}
		t.Skip("/usr/bin/python3 is not installed")
	}
	mnt, _ := mountBranch(t, fs.Options{AllowOther: true})
	roots := []string{mnt, reachableDir(t, "agentfs-priv-host-")}
	const otherGroup = 2000
	type actor struct {
		name     string
		uid, gid uint32
		groups   []uint32
	}
	actors := []actor{
		{"root", 0, 0, nil},
		{"owner", OtherUID, OtherGID, nil},
		{"owner-in-group-by-supplementary", OtherUID, OtherGID, []uint32{otherGroup}},
		{"other", 1001, 1001, nil},
		{"other-in-group", 1001, otherGroup, nil},
	}
	ops := []string{"append", "pwrite", "truncate", "otrunc", "ftruncate", "fallocate", "mmap",
		"copy_file_range", "chgrp-own", "chown-1000", "chmod-same", "setacl"}
	type setup struct {
		perm uint32
		gid  int
		cap  bool
	}
	var setups []setup
	for _, perm := range []uint32{0o6777, 0o6767, 0o2777, 0o2767, 0o4777, 0o777} {
		for _, gid := range []int{OtherGID, otherGroup} {
			setups = append(setups, setup{perm, gid, false})
			if perm == 0o6777 || perm == 0o777 {
				setups = append(setups, setup{perm, gid, true})
			}
		}
	}
	capv := []byte{0, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	type result struct {
		Err  string
		Mode uint32
		Size int64
		Cap  bool
	}
	results := make([]map[string]result, len(roots))
	for ri, root := range roots {
		results[ri] = map[string]result{}
		dir := filepath.Join(root, "priv")
		if err := os.Mkdir(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		chmod(t, dir, 0o777)
		src := filepath.Join(dir, "source")
		write(t, src, "source content", 0o644)
		for _, a := range actors {
			var batch [][3]string
			var names []string
			for _, s := range setups {
				for _, op := range ops {
					name := fmt.Sprintf("%s.%04o.g%d.cap%v.%s", a.name, s.perm, s.gid, s.cap, op)
					p := filepath.Join(dir, name)
					write(t, p, "0123456789", s.perm)
					if err := os.Chown(p, OtherUID, s.gid); err != nil {
						t.Fatal(err)
					}
					chmod(t, p, s.perm) // chown dropped the set-ID bits
					if s.cap {
						if err := unix.Setxattr(p, "security.capability", capv, 0); err != nil {
							t.Fatalf("%s: set security.capability: %v", p, err)
						}
					}
					batch = append(batch, [3]string{op, p, src})
					names = append(names, name)
				}
			}
			arg, _ := json.Marshal(batch)
			cmd := exec.Command("/usr/bin/python3", "-c", privScript, string(arg))
			groups := a.groups
			if groups == nil {
				groups = []uint32{}
			}
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: a.uid, Gid: a.gid, Groups: groups}}
			cmd.Dir = "/"
			out, err := cmd.Output()
			if err != nil {
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					out = append(out, ee.Stderr...)
				}
				t.Fatalf("%s as %s: %v: %s", root, a.name, err, out)
			}
			var errs []string
			if err := json.Unmarshal(out, &errs); err != nil || len(errs) != len(batch) {
				t.Fatalf("%s as %s: bad output %q: %v", root, a.name, out, err)
			}
			for i, name := range names {
				p := batch[i][1]
				var st syscall.Stat_t
				if err := syscall.Stat(p, &st); err != nil {
					t.Fatal(err)
				}
				_, cerr := unix.Getxattr(p, "security.capability", nil)
				results[ri][name] = result{errs[i], st.Mode & 0o7777, st.Size, cerr == nil}
			}
		}
	}
	diffs := 0
	for name, want := range results[1] {
		if got := results[0][name]; got != want {
			diffs++
			if diffs <= 40 {
				t.Errorf("%s (actor.mode.group.capability.op): mount: error %q mode %04o size %d capability %v; plain directory: error %q mode %04o size %d capability %v",
					name, got.Err, got.Mode, got.Size, got.Cap, want.Err, want.Mode, want.Size, want.Cap)
			}
		}
	}
	if diffs > 0 {
		t.Errorf("%d of %d cases differ", diffs, len(results[1]))
	}
	t.Logf("%d cases compared (%s)", len(results[1]), strings.Join(ops, ", "))
}
