package tree

import (
	"encoding/binary"
	"testing"
)

// FuzzDecodeNodeBounds: any bytes decode to a node or an error, never a panic, and a node's
// decoded keys stay within the bound decodeNode promises (a small multiple of the input).
func FuzzDecodeNodeBounds(f *testing.F) {
	f.Add(encodeNode(0, []entry{{key: []byte("a"), value: []byte("1")}, {key: []byte("ab"), value: nil}}))
	f.Add(encodeNode(1, []entry{{key: []byte("k"), value: make([]byte, 32)}}))
	huge := binary.AppendUvarint([]byte{'T', 1, 0}, 1<<40)
	f.Add(append(huge, 0, 1, 'i', 0))
	bomb := binary.AppendUvarint([]byte{'T', 1, 0}, 1000)
	bomb = append(binary.AppendUvarint(append(bomb, 0), 4000), make([]byte, 4000)...)
	for i := 1; i < 1000; i++ {
		bomb = append(binary.AppendUvarint(bomb, 4000), 2, byte(i>>8), byte(i), 0)
	}
	f.Add(bomb)
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := decodeNode(data)
		if err != nil {
			return
		}
		var keys int
		for i, e := range n.entries {
			keys += len(e.key)
			if len(e.key) > MaxKeySize {
				t.Fatalf("entry %d: key of %d bytes", i, len(e.key))
			}
			if n.level > 0 && len(e.value) != 32 {
				t.Fatalf("internal entry %d: value of %d bytes", i, len(e.value))
			}
		}
		if keys > keyBytesPerByte*len(data)+MaxKeySize || len(n.entries) > len(data) {
			t.Fatalf("%d input bytes decoded to %d entries with %d key bytes", len(data), len(n.entries), keys)
		}
	})
}
