package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Heap profiles for a missed memory row (-pprof DIR): while the row's load runs again, the
// suite samples the daemon's VmRSS and, every half second, takes a snapshot of what holds it:
// the Go heap profile (inuse_space), the runtime's MemStats (the tail of
// /debug/pprof/heap?debug=1) and /proc/PID/smaps_rollup. It keeps the snapshot taken at the
// highest RSS and writes ROW.heap.pprof and ROW.heap.top.txt, so the report can say what the peak
// is made of: Go heap in use, heap kept but idle, stacks, the GC's own metadata, or memory
// outside the Go heap.

// heapSnapshot is one look at the daemon's memory.
type heapSnapshot struct {
	rss      int64
	profile  []byte // /debug/pprof/heap (gzipped protobuf)
	memStats string // "# Name = value" lines of /debug/pprof/heap?debug=1
	smaps    string // /proc/PID/smaps_rollup
	at       time.Duration
}

func (s *suite) heapMiss(r *Row) {
	name := slug(r.Figure + " " + r.Params)
	path := filepath.Join(s.cfg.PprofDir, name+".heap.pprof")
	secs := s.profileSeconds()
	pid := s.d.Cmd.Process.Pid
	base := "http://" + s.d.PprofAddr + "/debug/pprof/heap"
	s.logf("pprof: %s %s; heap snapshots of the daemon for %ds while it runs again", r.Figure, r.why(), secs)
	s.profiling = true
	defer func() { s.profiling = false }()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var best heapSnapshot
	var peak int64
	var snapErr error
	wg.Add(1)
	start := time.Now()
	go func() {
		defer wg.Done()
		next := time.Now()
		for {
			if b, err := VmRSS(pid); err == nil && b > peak {
				peak = b
			}
			if time.Now().After(next) {
				next = time.Now().Add(500 * time.Millisecond)
				snap, err := takeHeapSnapshot(base, pid)
				snap.at = time.Since(start)
				if err != nil {
					snapErr = err
				} else if snap.rss > best.rss {
					best = snap
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	runs := 0
	var err error
	for deadline := start.Add(time.Duration(secs) * time.Second); time.Now().Before(deadline); runs++ {
		if err = r.again(); err != nil {
			break
		}
	}
	close(stop)
	wg.Wait()
	if err == nil && best.profile == nil {
		err = snapErr
	}
	if err != nil || best.profile == nil {
		s.logf("pprof: %s: no heap snapshot: %v", r.Figure, err)
		return
	}
	if err := os.WriteFile(path, best.profile, 0o644); err != nil {
		s.logf("pprof: %v", err)
		return
	}
	var top bytes.Buffer
	fmt.Fprintf(&top, "VmRSS peak over %d runs in %.0fs: %s; snapshot below taken at %.1fs with VmRSS %s\n\n",
		runs, time.Since(start).Seconds(), fmtBytes(peak), best.at.Seconds(), fmtBytes(best.rss))
	fmt.Fprintf(&top, "$ cat /proc/PID/smaps_rollup\n%s\n", best.smaps)
	fmt.Fprintf(&top, "runtime.MemStats (/debug/pprof/heap?debug=1)\n%s\n", best.memStats)
	for _, mode := range []string{"-top", "-top -cum"} {
		args := append([]string{"tool", "pprof", "-sample_index=inuse_space"}, strings.Fields(mode)...)
		out, err := exec.Command("go", append(args, "-nodecount=30", s.cfg.Bin, path)...).CombinedOutput()
		if err != nil {
			s.logf("pprof: go tool pprof %s: %v", path, err)
		}
		fmt.Fprintf(&top, "$ go tool pprof -sample_index=inuse_space %s -nodecount=30\n%s\n", mode, out)
	}
	os.WriteFile(strings.TrimSuffix(path, ".pprof")+".top.txt", top.Bytes(), 0o644)
	r.Profile = path
	s.logf("pprof: %s (peak %s, %d runs)", path, fmtBytes(peak), runs)
}

// takeHeapSnapshot fetches the daemon's heap profile and MemStats and reads its smaps_rollup.
func takeHeapSnapshot(base string, pid int) (heapSnapshot, error) {
	var snap heapSnapshot
	var err error
	if snap.rss, err = VmRSS(pid); err != nil {
		return snap, err
	}
	tmp, err := os.CreateTemp("", "agentfs-heap-*.pprof")
	if err != nil {
		return snap, err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	if err := fetchProfile(base, tmp.Name()); err != nil {
		return snap, err
	}
	if snap.profile, err = os.ReadFile(tmp.Name()); err != nil {
		return snap, err
	}
	if err := fetchProfile(base+"?debug=1", tmp.Name()); err != nil {
		return snap, err
	}
	text, err := os.ReadFile(tmp.Name())
	if err != nil {
		return snap, err
	}
	snap.memStats = memStatsLines(text)
	smaps, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return snap, err
	}
	snap.smaps = string(smaps)
	return snap, nil
}

// memStatsLines picks the runtime.MemStats part ("# Name = value") out of a debug=1 heap
// profile, leaving out the per-size-class table and the GC pause history.
func memStatsLines(text []byte) string {
	var b strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	in := false
	for sc.Scan() {
		line := sc.Text()
		if line == "# runtime.MemStats" {
			in = true
		}
		if !in || strings.HasPrefix(line, "# PauseNs") || strings.HasPrefix(line, "# BySize") {
			continue
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}
