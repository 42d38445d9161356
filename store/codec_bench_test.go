package store

import (
	"crypto/rand"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"

	"github.com/agentfs/agentfs/internal/testenv"
)

// sourceBlocks returns Go source from GOROOT cut into 64 KiB blocks (real text nobody here wrote).
func sourceBlocks(tb testing.TB) [][]byte {
	var all []byte
	root := filepath.Join(testenv.GOROOT(), "src", "net")
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".go") && len(all) < 16<<20 {
			b, _ := os.ReadFile(p)
			all = append(all, b...)
		}
		return nil
	})
	if len(all) < 1<<20 {
		tb.Skip("GOROOT source not found")
	}
	var blocks [][]byte
	for len(all) >= 64<<10 {
		blocks = append(blocks, all[:64<<10])
		all = all[64<<10:]
	}
	return blocks
}

func randomBlocks(int) [][]byte {
	blocks := make([][]byte, 64)
	for i := range blocks {
		blocks[i] = make([]byte, 64<<10)
		rand.Read(blocks[i])
	}
	return blocks
}

// Run: go test -run x -bench Compress ./store/ — the figures in codec.go's comment come from here.
func benchCompress(b *testing.B, blocks [][]byte, enc func(dst, src []byte) []byte) {
	var in, out int64
	dst := make([]byte, 0, 2*len(blocks[0]))
	b.SetBytes(int64(len(blocks[0])))
	i := 0
	for b.Loop() {
		src := blocks[i%len(blocks)]
		dst = enc(dst[:0], src)
		in += int64(len(src))
		out += int64(len(dst))
		i++
	}
	b.ReportMetric(float64(out)/float64(in), "ratio")
}

func BenchmarkCompress(b *testing.B) {
	zenc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	codecs := map[string]func(dst, src []byte) []byte{
		"s2":          func(dst, src []byte) []byte { return s2.Encode(dst[:cap(dst)], src) },
		"zstdFastest": func(dst, src []byte) []byte { return zenc.EncodeAll(src, dst) },
	}
	for _, data := range []struct {
		name   string
		blocks func(testing.TB) [][]byte
	}{{"source", sourceBlocks}, {"random", func(testing.TB) [][]byte { return randomBlocks(0) }}} {
		blocks := data.blocks(b)
		for name, enc := range codecs {
			b.Run(data.name+"/"+name+"/encode", func(b *testing.B) { benchCompress(b, blocks, enc) })
		}
	}
}

func BenchmarkDecompress(b *testing.B) {
	zenc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
	blocks := sourceBlocks(b)
	s2c := s2.Encode(nil, blocks[0])
	zc := zenc.EncodeAll(blocks[0], nil)
	dst := make([]byte, 0, len(blocks[0]))
	b.Run("source/s2", func(b *testing.B) {
		b.SetBytes(int64(len(blocks[0])))
		for b.Loop() {
			dst, _ = s2.Decode(dst[:cap(dst)], s2c)
		}
	})
	b.Run("source/zstd", func(b *testing.B) {
		b.SetBytes(int64(len(blocks[0])))
		for b.Loop() {
			dst, _ = zstdDec.DecodeAll(zc, dst[:0])
		}
	})
}
