package posixsuite

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The ACL cases need a filesystem with POSIX ACLs (ext4 has them; so has an agentfs mount).
var aclCases = map[string]Case{
	"ACLNamedUserAllows":     aclNamedUserAllows,
	"ACLNamedUserDenies":     aclNamedUserDenies,
	"ACLMaskLimits":          aclMaskLimits,
	"ACLChmodRewritesMask":   aclChmodRewritesMask,
	"ACLDefaultInherited":    aclDefaultInherited,
	"ACLNamedUserCreates":    aclNamedUserCreates,
	"ACLMalformedRejected":   aclMalformedRejected,
	"ACLEquivalentNotStored": aclEquivalentNotStored,
	"ACLClearsSetgid":        aclClearsSetgid,
}

func init() {
	for name, c := range aclCases {
		Cases[name] = c
	}
}

// needACL skips where the directory has no ACL support, and needs setfacl.
func needACL(t *testing.T, dir string) {
	t.Helper()
	needRoot(t)
	needTool(t, "setfacl")
	needTool(t, "getfacl")
	if _, err := unix.Getxattr(dir, "system.posix_acl_access", nil); errors.Is(err, unix.EOPNOTSUPP) {
		t.Skip("no POSIX ACLs on this filesystem")
	}
}

// canRead reports whether uid:gid can read p.
func canRead(uid, gid uint32, p string) bool {
	_, err := AsUser(uid, gid, "/bin/cat", p)
	return err == nil
}

func canWrite(uid, gid uint32, p string) bool {
	_, err := AsUser(uid, gid, "/bin/sh", "-c", `echo more >> "$0"`, p)
	return err == nil
}

// A named-user entry lets that user read a file its mode keeps from it, and removing the
// entry takes the access away again at once (the kernel's cached ACL is dropped).
func aclNamedUserAllows(t *testing.T, dir string) {
	needACL(t, dir)
	p := filepath.Join(dir, "f")
	write(t, p, "secret\n", 0o640)
	if canRead(OtherUID, OtherGID, p) {
		t.Fatal("uid 1000 read a 0640 root file before any ACL")
	}
	sh(t, dir, "setfacl -m u:1000:r f")
	if !canRead(OtherUID, OtherGID, p) {
		t.Error("uid 1000 cannot read with a named-user entry u:1000:r")
	}
	if canRead(OtherUID+1, OtherGID+1, p) {
		t.Error("uid 1001 reads with an entry for uid 1000 only")
	}
	sh(t, dir, "setfacl -x u:1000 f")
	if canRead(OtherUID, OtherGID, p) {
		t.Error("uid 1000 still reads after setfacl -x u:1000")
	}
}

// A named-user entry without r denies that user what "other" allows everyone else.
func aclNamedUserDenies(t *testing.T, dir string) {
	needACL(t, dir)
	p := filepath.Join(dir, "f")
	write(t, p, "public\n", 0o644)
	sh(t, dir, "setfacl -m u:1000:- f")
	if canRead(OtherUID, OtherGID, p) {
		t.Error("uid 1000 reads despite u:1000:---")
	}
	if !canRead(OtherUID+1, OtherGID+1, p) {
		t.Error("uid 1001 cannot read a file whose other entry is r")
	}
	wantMode(t, p, 0o644) // the mask is the union of the group class: r
}

// The mask limits named entries: u:1000:rw with mask r reads but cannot write.
func aclMaskLimits(t *testing.T, dir string) {
	needACL(t, dir)
	p := filepath.Join(dir, "f")
	write(t, p, "x\n", 0o600)
	sh(t, dir, "setfacl -m u:1000:rw,m::r f")
	wantMode(t, p, 0o640)
	if !canRead(OtherUID, OtherGID, p) {
		t.Error("uid 1000 cannot read with u:1000:rw, mask r")
	}
	if canWrite(OtherUID, OtherGID, p) {
		t.Error("uid 1000 writes through a mask of r")
	}
}

// chmod rewrites the mask: chmod 600 takes away the named user's access, chmod 660 gives it.
func aclChmodRewritesMask(t *testing.T, dir string) {
	needACL(t, dir)
	p := filepath.Join(dir, "f")
	write(t, p, "x\n", 0o600)
	sh(t, dir, "setfacl -m u:1000:rw f")
	chmod(t, p, 0o600)
	if out := sh(t, dir, "getfacl -cpn f"); !strings.Contains(out, "mask::---") {
		t.Errorf("after chmod 600:\n%s", out)
	}
	if canRead(OtherUID, OtherGID, p) {
		t.Error("uid 1000 reads after chmod 600 (mask ---)")
	}
	chmod(t, p, 0o660)
	if !canWrite(OtherUID, OtherGID, p) {
		t.Error("uid 1000 cannot write after chmod 660 (mask rw)")
	}
}

// A default ACL is inherited with no umask: a file and a directory made under umask 077
// give the named user what the default ACL says, and the directory passes it on.
func aclDefaultInherited(t *testing.T, dir string) {
	needACL(t, dir)
	sh(t, dir, "mkdir d && setfacl -d -m u::rwx,u:1000:rwx,g::-,o::- d && setfacl -m u:1000:rx d && (umask 077; echo x > d/f; mkdir d/s; echo y > d/s/g)")
	wantMode(t, filepath.Join(dir, "d/f"), 0o660)
	wantMode(t, filepath.Join(dir, "d/s"), 0o770)
	wantMode(t, filepath.Join(dir, "d/s/g"), 0o660)
	for _, f := range []string{"d/f", "d/s/g"} {
		if !canWrite(OtherUID, OtherGID, filepath.Join(dir, f)) {
			t.Errorf("uid 1000 cannot write %s made under a default ACL u:1000:rwx", f)
		}
	}
	if canRead(OtherUID+1, OtherGID+1, filepath.Join(dir, "d/s/g")) {
		t.Error("uid 1001 reads d/s/g")
	}
	if out := sh(t, dir, "getfacl -cpn d/s"); !strings.Contains(out, "default:user:1000:rwx") {
		t.Errorf("d/s did not inherit the default ACL:\n%s", out)
	}
}

// A named-user entry with wx on a root-owned 0755 directory lets that user create in it.
func aclNamedUserCreates(t *testing.T, dir string) {
	needACL(t, dir)
	sh(t, dir, "mkdir d && setfacl -m u:1000:rwx d")
	if out, err := shAs(t, OtherUID, OtherGID, "echo hi > "+filepath.Join(dir, "d/mine")); err != nil {
		t.Fatalf("uid 1000 cannot create with u:1000:rwx on the directory: %v %s", err, out)
	}
	if _, err := shAs(t, OtherUID+1, OtherGID+1, "echo hi > "+filepath.Join(dir, "d/theirs")); err == nil {
		t.Error("uid 1001 created in a 0755 root directory")
	}
}

// acl encodes an ACL xattr from tag, perm, id triples.
func acl(entries ...uint32) []byte {
	b := []byte{2, 0, 0, 0}
	for i := 0; i+2 < len(entries); i += 3 {
		b = append(b, byte(entries[i]), byte(entries[i]>>8), byte(entries[i+1]), byte(entries[i+1]>>8))
		id := entries[i+2]
		b = append(b, byte(id), byte(id>>8), byte(id>>16), byte(id>>24))
	}
	return b
}

const none = 0xffffffff

// Malformed ACL xattrs are refused with EINVAL (an unknown version with EOPNOTSUPP, as the
// kernel does) and change nothing; a default ACL on a file is refused with EACCES.
func aclMalformedRejected(t *testing.T, dir string) {
	needACL(t, dir)
	p := filepath.Join(dir, "f")
	write(t, p, "x", 0o640)
	bad := map[string][]byte{
		"short entry":        acl(1, 7, none, 4, 7, none, 0x20, 7, none)[:27],
		"no other":           acl(1, 7, none, 4, 7, none),
		"group before owner": acl(4, 7, none, 1, 7, none, 0x20, 7, none),
		"named without mask": acl(1, 7, none, 2, 7, 1000, 4, 7, none, 0x20, 7, none),
		"perm 8":             acl(1, 8, none, 4, 7, none, 0x20, 7, none),
		"unknown tag":        acl(1, 7, none, 4, 7, none, 0x40, 7, none, 0x20, 7, none),
		"two masks":          acl(1, 7, none, 2, 7, 5, 4, 7, none, 0x10, 7, none, 0x10, 7, none, 0x20, 7, none),
		"header only short":  {2, 0},
	}
	version1 := append([]byte{1, 0, 0, 0}, acl(1, 7, none, 4, 7, none, 0x20, 7, none)[4:]...)
	if err := unix.Setxattr(p, "system.posix_acl_access", version1, 0); !errors.Is(err, unix.EOPNOTSUPP) {
		t.Errorf("version 1: setxattr gave %v, want EOPNOTSUPP", err)
	}
	for name, v := range bad {
		if err := unix.Setxattr(p, "system.posix_acl_access", v, 0); !errors.Is(err, unix.EINVAL) {
			t.Errorf("%s: setxattr gave %v, want EINVAL", name, err)
		}
	}
	wantMode(t, p, 0o640)
	if _, err := unix.Getxattr(p, "system.posix_acl_access", make([]byte, 256)); !errors.Is(err, unix.ENODATA) {
		t.Errorf("after refused ACLs, getxattr: %v, want ENODATA", err)
	}
	def := acl(1, 7, none, 4, 7, none, 0x20, 7, none)
	if err := unix.Setxattr(p, "system.posix_acl_default", def, 0); !errors.Is(err, unix.EACCES) {
		t.Errorf("default ACL on a file: %v, want EACCES", err)
	}
}

// An ACL that says no more than the mode sets the mode and is not stored; removing an
// extended ACL leaves the mode as it was.
func aclEquivalentNotStored(t *testing.T, dir string) {
	needACL(t, dir)
	p := filepath.Join(dir, "f")
	write(t, p, "x", 0o600)
	if err := unix.Setxattr(p, "system.posix_acl_access", acl(1, 7, none, 4, 5, none, 0x20, 1, none), 0); err != nil {
		t.Fatal(err)
	}
	wantMode(t, p, 0o751)
	if _, err := unix.Getxattr(p, "system.posix_acl_access", make([]byte, 256)); !errors.Is(err, unix.ENODATA) {
		t.Errorf("a minimal ACL was stored: %v", err)
	}
	if names := listXattr(t, p); strings.Contains(names, "posix_acl") {
		t.Errorf("listxattr after a minimal ACL: %q", names)
	}
	sh(t, dir, "setfacl -m u:1000:rwx,m::rx f")
	if names := listXattr(t, p); !strings.Contains(names, "system.posix_acl_access") {
		t.Errorf("listxattr after setfacl: %q", names)
	}
	wantMode(t, p, 0o751)
	if err := unix.Removexattr(p, "system.posix_acl_access"); err != nil {
		t.Fatal(err)
	}
	wantMode(t, p, 0o751)
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
}

// An owner who is not in the file's group loses the set-group-id bit by setting an access
// ACL (as by chmod); root keeps it.
func aclClearsSetgid(t *testing.T, dir string) {
	needACL(t, dir)
	p := filepath.Join(dir, "f")
	write(t, p, "x", 0o2775)
	if err := os.Chown(p, OtherUID, 0); err != nil {
		t.Fatal(err)
	}
	chmod(t, p, 0o2775)
	sh(t, dir, "setfacl -m u:1001:r f")
	wantMode(t, p, 0o2775)
	if out, err := shAs(t, OtherUID, OtherGID, "setfacl -m u:1002:r "+p); err != nil {
		t.Fatalf("the owner cannot set an ACL: %v %s", err, out)
	}
	wantMode(t, p, 0o775)
}
