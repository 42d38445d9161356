package store

import (
	"crypto/rand"
	"crypto/sha256"
	"testing"

	"github.com/zeebo/blake3"
)

// Run: go test -run x -bench Hash ./store/ — the figures in id.go's comment come from here.
func benchHash(b *testing.B, sum func([]byte) [32]byte) {
	data := make([]byte, 64<<10)
	rand.Read(data)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		sum(data)
	}
}

func BenchmarkHashSHA256(b *testing.B) { benchHash(b, sha256.Sum256) }
func BenchmarkHashBLAKE3(b *testing.B) { benchHash(b, blake3.Sum256) }
