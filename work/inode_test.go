package work

import "testing"

func FuzzDecodeInode(f *testing.F) {
	f.Add(EncodeInode(&Inode{Ino: 5, Mode: 0o100644, Nlink: 1, Size: 3, Inline: true, Data: []byte("abc"), Name: "x"}))
	f.Add(EncodeInode(&Inode{Ino: 1, Mode: 0o40755, Nlink: 2}))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := DecodeInode(b)
		if err != nil {
			return
		}
		m, err := DecodeInode(EncodeInode(n))
		if err != nil || m.Ino != n.Ino || m.Size != n.Size || string(m.Data) != string(n.Data) || m.Name != n.Name {
			t.Fatalf("re-encoded inode differs: %v", err)
		}
	})
}
