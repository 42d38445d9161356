package remote

import (
	"bytes"
	"testing"

	"github.com/agentfs/agentfs/store"
)

func testRing(t testing.TB, masters ...byte) *keyRing {
	r := &keyRing{remote: "origin", env: EnvKey("origin")}
	for _, m := range masters {
		k, err := deriveKey(bytes.Repeat([]byte{m}, 32))
		if err != nil {
			t.Fatal(err)
		}
		r.keys = append(r.keys, k)
	}
	return r
}

// TestSealBindsNames: a sealed object opens only under the name (block id, pack, branch) and
// purpose it was sealed for, and with a key of the ring; a ring's old keys keep opening what
// they sealed.
func TestSealBindsNames(t *testing.T) {
	r := testRing(t, 1)
	data := bytes.Repeat([]byte("AGENTFS-PLAINTEXT-MARKER "), 100)
	id := store.Sum(data)
	other := store.Sum([]byte("other"))
	v := r.encodeObject(nil, id, data)
	if bytes.Contains(v, []byte("MARKER")) || bytes.Contains(v, id[:]) {
		t.Fatal("a sealed object shows its content or its id")
	}
	if got, err := r.decodeObject(id, v); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("open: %v", err)
	}
	if _, err := r.decodeObject(other, v); err == nil {
		t.Fatal("an object opened under another block's id")
	}
	ref := r.sealWhole("ref", "main", []byte(`{"commit":"x"}`))
	if _, err := r.openWhole("ref", "second", ref); err == nil {
		t.Fatal("branch main's ref opened as branch second's")
	}
	if _, err := r.openWhole("lease", "main", ref); err == nil {
		t.Fatal("a ref opened as a lease")
	}
	// Rotation: the new ring seals with key 2 and still opens key 1's objects.
	r2 := testRing(t, 2, 1)
	if got, err := r2.decodeObject(id, v); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("an old key's object in the new ring: %v", err)
	}
	if _, err := testRing(t, 3).decodeObject(id, v); err == nil || !bytes.Contains([]byte(err.Error()), []byte("is not it")) {
		t.Fatalf("a wrong key: %v", err)
	}
	if r2.packName(v) == store.Sum(v) || r2.packName(v) == r.packName(v) {
		t.Fatal("pack names are not keyed")
	}
}

// FuzzOpenSealed: whatever bytes a bucket holds, opening them as a pack entry, an index, a
// ref or a lease of an encrypted remote returns content that checks out or an error, never a
// panic; a valid seal with one byte changed never opens.
func FuzzOpenSealed(f *testing.F) {
	r := testRing(f, 9)
	data := []byte("tree node or block content")
	id := store.Sum(data)
	sealed := r.encodeObject(nil, id, data)
	idx := r.sealWhole("index", id.String(), encodeIndex(id, []entry{{ID: id, Kind: KindData, Offset: 5, Length: uint32(len(sealed))}}))
	ref := r.sealWhole("ref", "main", []byte(`{"commit":"`+id.String()+`"}`))
	f.Add(sealed, 0)
	f.Add(idx, 1)
	f.Add(ref, 2)
	f.Add([]byte("AFSE\x01"), 2)
	f.Add([]byte{}, 0)
	f.Fuzz(func(t *testing.T, v []byte, flip int) {
		out, err := r.decodeObject(id, v)
		if err == nil && store.Sum(out) != id {
			t.Fatal("an entry opened to content that is not its block")
		}
		if plain, err := r.openWhole("index", id.String(), v); err == nil {
			decodeIndex("index", plain)
		}
		r.openWhole("ref", "main", v)
		r.openWhole("lease", "locks/gc", v)
		// One byte changed in a valid seal: refused.
		for _, good := range [][]byte{sealed, idx, ref} {
			if len(good) == 0 {
				continue
			}
			bad := bytes.Clone(good)
			i := (flip%len(bad) + len(bad)) % len(bad)
			bad[i] ^= 0x5a
			if _, err := r.decodeObject(id, bad); err == nil && bytes.Equal(good, sealed) {
				t.Fatalf("a changed entry (byte %d) opened", i)
			}
			for _, p := range []struct{ purpose, name string }{{"index", id.String()}, {"ref", "main"}} {
				if _, err := r.openWhole(p.purpose, p.name, bad); err == nil && !bytes.Equal(good, sealed) {
					t.Fatalf("a changed %s (byte %d) opened", p.purpose, i)
				}
			}
		}
	})
}
