package fs

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestUnlinkedOpenFile(t *testing.T) {
	_, m := mountMain(t)
	p := filepath.Join(m.Dir(), "tmp")
	f, err := os.Create(p)
	must(t, err)
	defer f.Close()
	data := bytes.Repeat([]byte("unlinked but open "), 20000) // > one block
	_, err = f.Write(data)
	must(t, err)
	must(t, os.Remove(p))
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat after unlink: %v", err)
	}
	_, err = f.Write([]byte("more"))
	must(t, err)
	got := make([]byte, len(data)+4)
	n, err := f.ReadAt(got, 0)
	if n != len(got) || !bytes.Equal(got, append(data, "more"...)) {
		t.Fatalf("read back %d bytes, %v", n, err)
	}
	var st syscall.Stat_t
	must(t, syscall.Fstat(int(f.Fd()), &st))
	if st.Nlink != 0 || st.Size != int64(len(got)) {
		t.Fatalf("fstat: nlink %d size %d", st.Nlink, st.Size)
	}
	// A new file with the same name is a different file.
	must(t, os.WriteFile(p, []byte("new"), 0o644))
	if n, _ := f.ReadAt(got[:4], 0); string(got[:n]) != "unli" {
		t.Fatalf("old handle sees %q", got[:n])
	}
}

func TestOExcl(t *testing.T) {
	_, m := mountMain(t)
	p := filepath.Join(m.Dir(), "lock")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	must(t, err)
	f.Close()
	if _, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); !errors.Is(err, os.ErrExist) {
		t.Fatalf("second O_EXCL create: %v, want EEXIST", err)
	}
	// Racing O_EXCL creators: exactly one wins each round.
	for round := 0; round < 20; round++ {
		name := filepath.Join(m.Dir(), fmt.Sprintf("race%d", round))
		wins := make(chan bool, 8)
		for range 8 {
			go func() {
				f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
				if err == nil {
					f.Close()
				}
				wins <- err == nil
			}()
		}
		n := 0
		for range 8 {
			if <-wins {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("round %d: %d O_EXCL creators won", round, n)
		}
	}
}

func TestSparseFile(t *testing.T) {
	_, m := mountMain(t)
	p := filepath.Join(m.Dir(), "sparse")
	f, err := os.Create(p)
	must(t, err)
	defer f.Close()
	const far = 10<<30 + 12345 // 10 GiB: only works if holes cost nothing
	_, err = f.WriteAt([]byte("end"), far)
	must(t, err)
	_, err = f.WriteAt([]byte("start"), 0)
	must(t, err)
	fi, err := f.Stat()
	must(t, err)
	if fi.Size() != far+3 {
		t.Fatalf("size %d", fi.Size())
	}
	buf := make([]byte, 1<<20)
	for _, off := range []int64{5, 64 << 10, 1 << 30, far - int64(len(buf))} {
		n, err := f.ReadAt(buf, off)
		if err != nil || n != len(buf) || !bytes.Equal(buf, make([]byte, len(buf))) {
			t.Fatalf("hole at %d: n=%d err=%v or not zeros", off, n, err)
		}
	}
	got := make([]byte, 3)
	if _, err := f.ReadAt(got, far); err != nil || string(got) != "end" {
		t.Fatalf("tail %q %v", got, err)
	}
	// Truncate down into the middle and up again: the hole stays zeros.
	must(t, f.Truncate(3))
	must(t, f.Truncate(1<<20))
	n, _ := f.ReadAt(buf, 0)
	if n != 1<<20 || string(buf[:3]) != "sta" || !bytes.Equal(buf[3:], make([]byte, len(buf)-3)) {
		t.Fatalf("after truncate down and up: n=%d %q", n, buf[:8])
	}
}

// TestLargeFile streams a file larger than the workspace's dirty buffer (64 MiB) and reads it
// back by hash. AGENTFS_LARGE_MB sets the size (default 200).
func TestLargeFile(t *testing.T) {
	size := envInt("AGENTFS_LARGE_MB", 200) << 20
	_, m := mountMain(t)
	p := filepath.Join(m.Dir(), "large")
	f, err := os.Create(p)
	must(t, err)
	src := rand.NewChaCha8([32]byte{1, 2, 3})
	h := sha256.New()
	start := time.Now()
	if _, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(src, int64(size))); err != nil {
		t.Fatal(err)
	}
	must(t, f.Close())
	wrote := time.Since(start)
	want := h.Sum(nil)
	start = time.Now()
	g, err := os.Open(p)
	must(t, err)
	defer g.Close()
	h.Reset()
	n, err := io.Copy(h, g)
	must(t, err)
	if n != int64(size) || !bytes.Equal(h.Sum(nil), want) {
		t.Fatalf("read back %d bytes, hash differs: %v", n, !bytes.Equal(h.Sum(nil), want))
	}
	t.Logf("%d MiB: write %v (%.0f MB/s), read %v (%.0f MB/s)", size>>20, wrote, float64(size)/wrote.Seconds()/1e6,
		time.Since(start), float64(size)/time.Since(start).Seconds()/1e6)
}

// TestLargeDirectory creates, lists and stats a directory of AGENTFS_BIGDIR_N entries
// (default 100,000).
func TestLargeDirectory(t *testing.T) {
	n := envInt("AGENTFS_BIGDIR_N", 100000)
	_, m := mountMain(t)
	d := filepath.Join(m.Dir(), "big")
	must(t, os.Mkdir(d, 0o755))
	start := time.Now()
	for i := range n {
		fd, err := syscall.Open(filepath.Join(d, fmt.Sprintf("entry-%06d", i)), syscall.O_CREAT|syscall.O_WRONLY, 0o644)
		if err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
		syscall.Close(fd)
	}
	created := time.Since(start)
	start = time.Now()
	names := dirNames(t, d)
	listed := time.Since(start)
	if len(names) != n {
		t.Fatalf("listed %d entries, want %d", len(names), n)
	}
	for i, name := range names {
		if name != fmt.Sprintf("entry-%06d", i) {
			t.Fatalf("entry %d is %q", i, name)
		}
	}
	start = time.Now()
	var st syscall.Stat_t
	for i := 0; i < n; i += 7 {
		must(t, syscall.Lstat(filepath.Join(d, names[i]), &st))
	}
	must(t, os.Remove(filepath.Join(d, names[n/2])))
	if got := len(dirNames(t, d)); got != n-1 {
		t.Fatalf("after one unlink: %d entries", got)
	}
	t.Logf("%d entries: create %v, list %v, stat 1/7 + unlink + relist %v", n, created, listed, time.Since(start))
}
