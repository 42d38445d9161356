package posixacl

import (
	"bytes"
	"slices"
	"testing"
)

const none = undefinedID

func enc(entries ...Entry) []byte { return ACL(entries).Encode() }

func TestParseRefusesMalformed(t *testing.T) {
	base := []Entry{{UserObj, 7, none}, {GroupObj, 5, none}, {Other, 4, none}}
	bad := map[string][]byte{
		"empty":                  nil,
		"short header":           {2, 0},
		"version 1":              append([]byte{1, 0, 0, 0}, enc(base...)[4:]...),
		"partial entry":          enc(base...)[:len(enc(base...))-1],
		"no other":               enc(base[:2]...),
		"no owner":               enc(base[1:]...),
		"group before owner":     enc(base[1], base[0], base[2]),
		"two owners":             enc(base[0], base[0], base[1], base[2]),
		"named without mask":     enc(base[0], Entry{User, 7, 1000}, base[1], base[2]),
		"named user after group": enc(base[0], base[1], Entry{User, 7, 1000}, Entry{Mask, 7, none}, base[2]),
		"mask before group":      enc(base[0], Entry{Mask, 7, none}, base[1], base[2]),
		"two masks":              enc(base[0], base[1], Entry{Mask, 7, none}, Entry{Mask, 7, none}, base[2]),
		"perm 8":                 enc(base[0], Entry{GroupObj, 8, none}, base[2]),
		"unknown tag":            enc(base[0], base[1], Entry{0x40, 7, none}, base[2]),
		"named undefined id":     enc(base[0], Entry{User, 7, none}, base[1], Entry{Mask, 7, none}, base[2]),
		"entry after other":      enc(base[0], base[1], base[2], base[2]),
	}
	for name, v := range bad {
		if a, err := Parse(v); err == nil {
			t.Errorf("%s: parsed as %v", name, a)
		}
	}
	if a, err := Parse([]byte{2, 0, 0, 0}); err != nil || a != nil {
		t.Errorf("header only: %v %v, want an empty ACL", a, err)
	}
	full := enc(base[0], Entry{User, 6, 1000}, Entry{User, 4, 1001}, base[1], Entry{Group, 2, 50}, Entry{Mask, 7, none}, base[2])
	a, err := Parse(full)
	if err != nil || !bytes.Equal(a.Encode(), full) {
		t.Fatalf("full ACL: %v %v", a, err)
	}
}

// The examples are what ext4 shows for the same operations (checked with getfacl).
func TestModeChmodInherit(t *testing.T) {
	a := ACL{{UserObj, 6, none}, {User, 7, 1000}, {GroupObj, 4, none}, {Mask, 5, none}, {Other, 0, none}}
	if perm, equiv := a.Mode(); perm != 0o650 || equiv {
		t.Errorf("Mode: %04o %v", perm, equiv)
	}
	if perm, equiv := (ACL{{UserObj, 7, none}, {GroupObj, 5, none}, {Other, 1, none}}).Mode(); perm != 0o751 || !equiv {
		t.Errorf("minimal Mode: %04o %v", perm, equiv)
	}
	c := a.Chmod(0o701)
	want := ACL{{UserObj, 7, none}, {User, 7, 1000}, {GroupObj, 4, none}, {Mask, 0, none}, {Other, 1, none}}
	if !slices.Equal(c, want) {
		t.Errorf("Chmod: %v", c)
	}
	if !slices.Equal(a, ACL{{UserObj, 6, none}, {User, 7, 1000}, {GroupObj, 4, none}, {Mask, 5, none}, {Other, 0, none}}) {
		t.Error("Chmod changed its receiver")
	}
	// default u::rwx,u:1000:rwx,g::r-x,m::rwx,o::--- with create mode 0666: 0660, mask rw
	def := ACL{{UserObj, 7, none}, {User, 7, 1000}, {GroupObj, 5, none}, {Mask, 7, none}, {Other, 0, none}}
	mode, acc := def.Inherit(0o100666)
	if mode != 0o100660 || !slices.Equal(acc, ACL{{UserObj, 6, none}, {User, 7, 1000}, {GroupObj, 5, none}, {Mask, 6, none}, {Other, 0, none}}) {
		t.Errorf("Inherit: %o %v", mode, acc)
	}
	// a minimal default ACL gives no access ACL, and the set-id bits stay
	mode, acc = (ACL{{UserObj, 6, none}, {GroupObj, 4, none}, {Other, 4, none}}).Inherit(0o42777)
	if mode != 0o42644 || acc != nil {
		t.Errorf("minimal Inherit: %o %v", mode, acc)
	}
	m := a.MapIDs(func(u uint32) uint32 { return u + 1 }, func(g uint32) uint32 { return g + 2 })
	if m[1].ID != 1001 || m[0].ID != none || a[1].ID != 1000 {
		t.Errorf("MapIDs: %v (from %v)", m, a)
	}
}

// FuzzParse: no input panics, and what parses encodes back to itself.
func FuzzParse(f *testing.F) {
	f.Add(enc(Entry{UserObj, 7, none}, Entry{GroupObj, 5, none}, Entry{Other, 4, none}))
	f.Add(enc(Entry{UserObj, 7, none}, Entry{User, 7, 3}, Entry{GroupObj, 5, none}, Entry{Mask, 7, none}, Entry{Other, 4, none}))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := Parse(b)
		if err != nil || a == nil {
			return
		}
		again, err := Parse(a.Encode())
		if err != nil || !slices.Equal(a, again) {
			t.Fatalf("%x: %v, again %v %v", b, a, again, err)
		}
		a.Mode()
		a.Chmod(0o777)
		a.Inherit(0o100666)
	})
}
