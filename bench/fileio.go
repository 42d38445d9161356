package bench

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// The file workloads use plain system calls on a directory path, so the same code runs on an
// agentfs mount, a plain directory and any --compare filesystem.

// DropCaches writes back dirty data and drops the kernel's page, dentry and inode caches.
func DropCaches() error {
	unix.Sync()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0)
}

// CanDropCaches reports whether this process may drop the kernel caches.
func CanDropCaches() bool {
	f, err := os.OpenFile("/proc/sys/vm/drop_caches", os.O_WRONLY, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// pool is incompressible data that never repeats at a 64 KiB-aligned offset within the
// first 65,536 MiB chunks it hands out (see chunk), so content-addressed stores cannot
// dedupe it and nothing large is ever held in memory.
type pool struct{ buf []byte }

const poolSize = 64 << 20

func newPool(seed uint64) *pool {
	p := &pool{buf: make([]byte, poolSize+(1<<20))}
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 1, 2, 3})
	r.Read(p.buf)
	return p
}

// chunk returns n bytes (n <= 1 MiB) for the i-th chunk: chunk offsets differ by an odd
// number of bytes modulo 64 KiB, so no two 64 KiB blocks of written files are equal.
func (p *pool) chunk(i int64, n int) []byte {
	off := (i * ((1 << 20) + 4099)) % poolSize
	return p.buf[off : off+int64(n)]
}

// writeFileFrom writes size bytes from the pool into path with 1 MiB writes, then fsyncs.
func writeFileFrom(p *pool, path string, size int64, seed int64) (time.Duration, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	for off, i := int64(0), seed; off < size; i++ {
		n := int(min(1<<20, size-off))
		if _, err := f.Write(p.chunk(i, n)); err != nil {
			f.Close()
			return 0, err
		}
		off += int64(n)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return 0, err
	}
	d := time.Since(start)
	return d, f.Close()
}

// readAll reads path sequentially with 1 MiB reads and returns the throughput in MB/s.
func readAll(path string) (Value, error) {
	f, err := os.Open(path)
	if err != nil {
		return Value{}, err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	start := time.Now()
	var total int64
	for {
		n, err := f.Read(buf)
		total += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return Value{}, err
		}
	}
	d := time.Since(start)
	return Value{Rate: float64(total) / d.Seconds() / 1e6, Unit: "MB/s", Dur: d}, nil
}

// RandomN is the number of operations of each random I/O figure.
type RandomN struct{ ReadWarm, WriteWarm, ReadCold, WriteCold, Fsync int }

// RandomIO holds the random 4 KiB I/O figures of one directory.
type RandomIO struct {
	ReadWarm, WriteWarm, ReadCold, WriteCold, WriteFsync Value
}

// RunRandomIO makes a file of fileSize bytes in dir and measures 4 KiB random reads and
// writes at aligned offsets: warm (the file read once through the same descriptor just
// before), cold (cold() just before, the file opened again, POSIX_FADV_RANDOM) and write +
// fsync. cold nil: the cold figures are n/a.
// A count of zero skips that figure (used to repeat one figure under the profiler).
func RunRandomIO(p *pool, dir string, fileSize int64, n RandomN, cold func() error) (RandomIO, error) {
	var out RandomIO
	path := filepath.Join(dir, "random.dat")
	if _, err := writeFileFrom(p, path, fileSize, 7); err != nil {
		return out, err
	}
	defer os.Remove(path)
	pages := fileSize / 4096
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 4096)
	wbuf := p.chunk(999, 4096)
	// op opens the file, runs n random reads or writes (each followed by fsync if sync) and
	// closes it; prepare runs on the open file, untimed.
	op := func(n int, write, sync bool, prepare func(f *os.File) error) (Value, error) {
		if n == 0 {
			return Value{Text: "skipped"}, nil
		}
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return Value{}, err
		}
		defer f.Close()
		fd := int(f.Fd())
		if err := prepare(f); err != nil {
			return Value{}, err
		}
		s := make([]time.Duration, n)
		for i := range s {
			off := rng.Int64N(pages) * 4096
			t := time.Now()
			if write {
				_, err = unix.Pwrite(fd, wbuf, off)
				if err == nil && sync {
					err = unix.Fsync(fd)
				}
			} else {
				_, err = unix.Pread(fd, buf, off)
			}
			s[i] = time.Since(t)
			if err != nil {
				return Value{}, err
			}
		}
		return Latencies(s), f.Sync()
	}
	warm := func(f *os.File) error {
		_, err := io.Copy(io.Discard, io.NewSectionReader(f, 0, fileSize))
		return err
	}
	random := func(f *os.File) error { return unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_RANDOM) }
	nothing := func(*os.File) error { return nil }
	var err error
	if out.ReadWarm, err = op(n.ReadWarm, false, false, warm); err != nil {
		return out, err
	}
	if out.WriteWarm, err = op(n.WriteWarm, true, false, warm); err != nil {
		return out, err
	}
	if cold != nil {
		if n.ReadCold > 0 {
			if err := cold(); err != nil {
				return out, err
			}
		}
		if out.ReadCold, err = op(n.ReadCold, false, false, random); err != nil {
			return out, err
		}
		if n.WriteCold > 0 {
			if err := cold(); err != nil {
				return out, err
			}
		}
		if out.WriteCold, err = op(n.WriteCold, true, false, random); err != nil {
			return out, err
		}
	} else {
		out.ReadCold = Value{Text: "n/a (cannot drop caches: not root)"}
		out.WriteCold = out.ReadCold
	}
	if out.WriteFsync, err = op(n.Fsync, true, true, nothing); err != nil {
		return out, err
	}
	return out, nil
}

// RunSmallOpenRead measures open + read + close of small files already in the caches (each
// read once before), cycling over files files of size bytes.
func RunSmallOpenRead(dir string, files, size, n int) (Value, error) {
	sub := filepath.Join(dir, "small")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		return Value{}, err
	}
	defer os.RemoveAll(sub)
	data := make([]byte, size)
	for i := range data {
		data[i] = byte('a' + i%26)
	}
	paths := make([]string, files)
	for i := range paths {
		paths[i] = filepath.Join(sub, fmt.Sprintf("s%04d.txt", i))
		if err := os.WriteFile(paths[i], data, 0o644); err != nil {
			return Value{}, err
		}
		if _, err := os.ReadFile(paths[i]); err != nil {
			return Value{}, err
		}
	}
	buf := make([]byte, size+1)
	s := make([]time.Duration, n)
	for i := range s {
		t := time.Now()
		fd, err := unix.Open(paths[i%files], unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return Value{}, err
		}
		m, err := unix.Read(fd, buf)
		unix.Close(fd)
		s[i] = time.Since(t)
		if err != nil {
			return Value{}, err
		}
		if m != size {
			return Value{}, fmt.Errorf("read %d bytes of %s, want %d", m, paths[i%files], size)
		}
	}
	return Latencies(s), nil
}

// Sequential holds the 1 GiB sequential figures.
type Sequential struct {
	WriteFsync, ReadCold, ReadWarm Value
}

// RunSequential writes a size-byte file with 1 MiB writes and fsyncs it, then reads it cold
// (after cold(); nil: n/a) and warm (right after).
func RunSequential(p *pool, dir string, size int64, cold func() error) (Sequential, error) {
	var out Sequential
	path := filepath.Join(dir, "seq.dat")
	defer os.Remove(path)
	d, err := writeFileFrom(p, path, size, 1000)
	if err != nil {
		return out, err
	}
	out.WriteFsync = Value{Rate: float64(size) / d.Seconds() / 1e6, Unit: "MB/s", Dur: d}
	if cold != nil {
		if err := cold(); err != nil {
			return out, err
		}
		if out.ReadCold, err = readAll(path); err != nil {
			return out, err
		}
	} else {
		out.ReadCold = Value{Text: "n/a (cannot drop caches: not root)"}
		if _, err := readAll(path); err != nil {
			return out, err
		}
	}
	if out.ReadWarm, err = readAll(path); err != nil {
		return out, err
	}
	return out, nil
}

// Metadata holds create/stat/unlink rates.
type Metadata struct {
	Create, Stat, Unlink Value
}

// RunMetadata creates n files of 100 bytes in one directory, stats them all, unlinks them
// all, and returns the rates.
func RunMetadata(dir string, n int) (Metadata, error) {
	var out Metadata
	sub := filepath.Join(dir, "meta")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		return out, err
	}
	defer os.RemoveAll(sub)
	data := make([]byte, 100)
	paths := make([]string, n)
	for i := range paths {
		paths[i] = filepath.Join(sub, fmt.Sprintf("file%06d", i))
	}
	rate := func(fn func(p string) error) (Value, error) {
		t := time.Now()
		for _, p := range paths {
			if err := fn(p); err != nil {
				return Value{}, err
			}
		}
		d := time.Since(t)
		return Value{Rate: float64(n) / d.Seconds(), Unit: "ops/s", Dur: d}, nil
	}
	var err error
	if out.Create, err = rate(func(p string) error {
		fd, err := unix.Open(p, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return err
		}
		_, err = unix.Write(fd, data)
		return errors.Join(err, unix.Close(fd))
	}); err != nil {
		return out, err
	}
	var st unix.Stat_t
	if out.Stat, err = rate(func(p string) error { return unix.Stat(p, &st) }); err != nil {
		return out, err
	}
	if out.Unlink, err = rate(unix.Unlink); err != nil {
		return out, err
	}
	return out, nil
}
