package work

import (
	"context"
	"errors"
	"syscall"
	"testing"

	"github.com/agentfs/agentfs/internal/posixacl"
)

// The workspace checks ACL xattrs itself: import and the control API set xattrs without
// the kernel's validation in front. Malformed ACLs are refused with EINVAL and change
// nothing; a default ACL on a file with EACCES; an equivalent ACL sets the mode only.
func TestACLXattrsWithoutKernel(t *testing.T) {
	ctx := context.Background()
	ws := newTestWorkspace(t)
	f, err := ws.Create(ctx, RootIno, "f", Attr{Mode: 0o100640})
	if err != nil {
		t.Fatal(err)
	}
	const none = 0xffffffff
	e := func(tag, perm uint16, id uint32) posixacl.Entry { return posixacl.Entry{Tag: tag, Perm: perm, ID: id} }
	valid := posixacl.ACL{e(posixacl.UserObj, 7, none), e(posixacl.User, 6, 1000), e(posixacl.GroupObj, 4, none), e(posixacl.Mask, 5, none), e(posixacl.Other, 0, none)}.Encode()
	for name, v := range map[string][]byte{
		"truncated":    valid[:len(valid)-3],
		"version 3":    append([]byte{3, 0, 0, 0}, valid[4:]...),
		"no mask":      posixacl.ACL{e(posixacl.UserObj, 7, none), e(posixacl.User, 6, 1000), e(posixacl.GroupObj, 4, none), e(posixacl.Other, 0, none)}.Encode(),
		"out of order": posixacl.ACL{e(posixacl.GroupObj, 4, none), e(posixacl.UserObj, 7, none), e(posixacl.Other, 0, none)}.Encode(),
	} {
		for _, attr := range []string{posixacl.Access, posixacl.Default} {
			if err := ws.SetXattr(ctx, f.Ino, attr, v, 0); !errors.Is(err, syscall.EINVAL) {
				t.Errorf("%s %s: %v, want EINVAL", name, attr, err)
			}
		}
	}
	if n, _ := ws.GetAttr(ctx, f.Ino); n.Mode != 0o100640 {
		t.Fatalf("refused ACLs changed the mode to %o", n.Mode)
	}
	if err := ws.SetXattr(ctx, f.Ino, posixacl.Default, valid, 0); !errors.Is(err, syscall.EACCES) {
		t.Errorf("default ACL on a file: %v, want EACCES", err)
	}
	if err := ws.SetXattr(ctx, f.Ino, posixacl.Access, valid, 0); err != nil {
		t.Fatal(err)
	}
	if n, _ := ws.GetAttr(ctx, f.Ino); n.Mode != 0o100750 {
		t.Errorf("after an ACL with mask r-x: mode %o, want 100750", n.Mode)
	}
	minimal := posixacl.ACL{e(posixacl.UserObj, 6, none), e(posixacl.GroupObj, 0, none), e(posixacl.Other, 4, none)}.Encode()
	if err := ws.SetXattr(ctx, f.Ino, posixacl.Access, minimal, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := ws.GetXattr(ctx, f.Ino, posixacl.Access); !errors.Is(err, syscall.ENODATA) {
		t.Errorf("a minimal ACL replaced the stored one but is itself stored: %v", err)
	}
	if n, _ := ws.GetAttr(ctx, f.Ino); n.Mode != 0o100604 {
		t.Errorf("after a minimal ACL: mode %o, want 100604", n.Mode)
	}
}
