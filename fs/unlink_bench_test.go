package fs

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// BenchmarkUnlink: unlink of small files just created in one directory, through a mount (the
// kernel knows every file, so each unlink is followed by a FORGET).
func BenchmarkUnlink(b *testing.B) {
	_, m := mountMain(b)
	d := filepath.Join(m.Dir(), "d")
	must(b, os.Mkdir(d, 0o755))
	names := make([]string, b.N)
	for i := range names {
		names[i] = filepath.Join(d, fmt.Sprintf("f%07d", i))
		must(b, os.WriteFile(names[i], []byte("hello"), 0o644))
	}
	b.ResetTimer()
	for i := range names {
		if err := syscall.Unlink(names[i]); err != nil {
			b.Fatal(err)
		}
	}
}
