package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

func run(dir string, name string, args ...string) (time.Duration, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir, "LC_ALL=C")
	t := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(t)
	if err != nil {
		return d, fmt.Errorf("%s %s in %s: %v: %s", name, strings.Join(args, " "), dir, err, strings.TrimSpace(string(out)))
	}
	return d, nil
}

// MakeTarball writes a tar of $(go env GOROOT)/SUB (e.g. "src") to path once and returns how
// many files it holds.
func MakeTarball(goroot, sub, path string) (int, error) {
	if _, err := os.Stat(path); err != nil {
		if _, err := run(goroot, "tar", "-cf", path, sub); err != nil {
			return 0, err
		}
	}
	n := 0
	err := filepath.WalkDir(filepath.Join(goroot, sub), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return err
	})
	return n, err
}

// RunTarExtract times tar -x of tarball into dir/tarx, then removes it (untimed).
func RunTarExtract(dir, tarball string) (Value, error) {
	sub := filepath.Join(dir, "tarx")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		return Value{}, err
	}
	defer os.RemoveAll(sub)
	d, err := run(sub, "tar", "-xf", tarball)
	if err != nil {
		return Value{}, err
	}
	return Value{Dur: d}, nil
}

// Git holds the git figures.
type Git struct {
	Status, RmRf Value
}

// RunGit makes a git repository of files files (100 per directory, ~200 bytes each) with
// one commit, times git status (one warm-up run, then runs times), then rm -rf of the tree.
func RunGit(dir string, files, runs int) (Git, error) {
	var out Git
	sub := filepath.Join(dir, "gitrepo")
	defer os.RemoveAll(sub)
	for i := 0; i < files; i++ {
		p := filepath.Join(sub, fmt.Sprintf("pkg%03d", i/100), fmt.Sprintf("file%05d.go", i))
		if i%100 == 0 {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return out, err
			}
		}
		body := fmt.Sprintf("package pkg%03d\n\n// File %d of the benchmark repository.\nfunc F%d() int { return %d }\n", i/100, i, i, i*7)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			return out, err
		}
	}
	git := func(args ...string) (time.Duration, error) {
		return run(sub, "git", append([]string{"-c", "user.name=bench", "-c", "user.email=bench@example.com", "-c", "gc.auto=0"}, args...)...)
	}
	for _, args := range [][]string{{"init", "-q"}, {"add", "-A"}, {"commit", "-q", "-m", "bench"}} {
		if _, err := git(args...); err != nil {
			return out, err
		}
	}
	if _, err := git("status", "--porcelain"); err != nil {
		return out, err
	}
	var s []time.Duration
	for i := 0; i < runs; i++ {
		d, err := git("status", "--porcelain")
		if err != nil {
			return out, err
		}
		s = append(s, d)
	}
	out.Status = Latencies(s)
	d, err := run(dir, "rm", "-rf", sub)
	if err != nil {
		return out, err
	}
	out.RmRf = Value{Dur: d}
	return out, nil
}

// RunParallelWriters has one goroutine per directory write files files of size bytes
// each (create, write, close) and fsync the last one; it returns the aggregate throughput.
func RunParallelWriters(p *pool, dirs []string, files, size int) (Value, error) {
	var wg sync.WaitGroup
	errs := make([]error, len(dirs))
	start := time.Now()
	for w, d := range dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sub := filepath.Join(d, "work")
			if err := os.MkdirAll(sub, 0o755); err != nil {
				errs[w] = err
				return
			}
			for i := 0; i < files; i++ {
				f, err := os.Create(filepath.Join(sub, fmt.Sprintf("out%05d.bin", i)))
				if err != nil {
					errs[w] = err
					return
				}
				_, err = f.Write(p.chunk(int64(w*files+i), size))
				if err == nil && i == files-1 {
					err = f.Sync()
				}
				if cerr := f.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					errs[w] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	for _, err := range errs {
		if err != nil {
			return Value{}, err
		}
	}
	total := int64(len(dirs)) * int64(files) * int64(size)
	return Value{Rate: float64(total) / d.Seconds() / 1e6, Unit: "MB/s", Dur: d}, nil
}
