package store

import (
	"bytes"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

func TestCodecRoundTrip(t *testing.T) {
	for _, data := range [][]byte{nil, []byte("short"), bytes.Repeat([]byte("abc"), 1000)} {
		v := encodeValue(nil, data)
		got, err := decodeValue(nil, v)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("round trip of %d bytes: %d bytes, %v", len(data), len(got), err)
		}
	}
	if v := encodeValue(nil, bytes.Repeat([]byte("abc"), 1000)); v[0] != codecS2 || len(v) > 300 {
		t.Fatalf("compressible value stored with codec %d, %d bytes", v[0], len(v))
	}
}

func FuzzDecodeValue(f *testing.F) {
	text := bytes.Repeat([]byte("package store\n"), 200)
	zenc, _ := zstd.NewWriter(nil)
	for _, seed := range [][]byte{
		{}, {codecRaw}, {codecS2}, {codecZstd}, {9, 1, 2},
		encodeValue(nil, []byte("hello")),
		encodeValue(nil, text),
		append([]byte{codecS2}, s2.Encode(nil, text)[:20]...),
		append([]byte{codecZstd}, zenc.EncodeAll(text, nil)...),
		{codecS2, 0xff, 0xff, 0xff, 0xff, 0x0f}, // claims 4 GiB
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		out, err := decodeValue(nil, v)
		if err == nil && len(out) > maxDecoded && v[0] != codecRaw {
			t.Fatalf("decoded %d bytes, over the limit", len(out))
		}
		// Whatever decodes must re-encode to something that decodes to the same bytes.
		if err == nil {
			back, err := decodeValue(nil, encodeValue(nil, out))
			if err != nil || !bytes.Equal(back, out) {
				t.Fatalf("re-encode round trip failed: %v", err)
			}
		}
	})
}
