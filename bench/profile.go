package bench

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"
)

// Profiles for missed targets (-pprof DIR): the daemon runs with AGENTFS_PPROF set, and after
// a row misses its target the suite fetches a CPU profile of the daemon while it repeats the
// row's agentfs side, then writes `go tool pprof -top` of it beside the profile.

// freeAddr returns a loopback TCP address nobody listens on now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// profileSeconds is how long a missed row is repeated under the profiler.
func (s *suite) profileSeconds() int {
	if s.cfg.Quick {
		return 5
	}
	return 10
}

func (s *suite) profileMiss(r *Row) {
	if s.cfg.PprofDir == "" || r.again == nil || !r.inProcess && (s.d == nil || s.d.PprofAddr == "") {
		return
	}
	if err := os.MkdirAll(s.cfg.PprofDir, 0o755); err != nil {
		s.logf("pprof: %v", err)
		return
	}
	if r.heap {
		if !r.inProcess {
			s.heapMiss(r)
		}
		return
	}
	name := slug(r.Figure + " " + r.Params)
	path := filepath.Join(s.cfg.PprofDir, name+".pprof")
	secs := s.profileSeconds()
	who, bin := "the daemon", s.cfg.Bin
	if r.inProcess {
		who, bin = "this process", os.Args[0]
	}
	s.logf("pprof: %s %s; profiling %s for %ds while it runs again", r.Figure, r.why(), who, secs)
	s.profiling = true
	defer func() { s.profiling = false }()
	fetched := make(chan error, 1)
	go func() {
		if r.inProcess {
			fetched <- profileSelf(time.Duration(secs)*time.Second, path)
			return
		}
		fetched <- fetchProfile("http://"+s.d.PprofAddr+fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs), path)
	}()
	var err error
	runs := 0
	start := time.Now()
	cpu0 := s.daemonCPU(r)
loop:
	for {
		if err = r.again(); err != nil {
			break
		}
		runs++
		select {
		case err = <-fetched:
			break loop
		default:
		}
	}
	if runs == 0 || err != nil {
		if err == nil {
			err = <-fetched
		}
		s.logf("pprof: %s: %v", r.Figure, err)
		return
	}
	// Flat (where the CPU is) and cumulative (which call paths hold it): the flat top of a
	// FUSE server is mostly its read/write system calls on /dev/fuse.
	var top []byte
	for _, mode := range []string{"-top", "-top -cum"} {
		args := append([]string{"tool", "pprof"}, strings.Fields(mode)...)
		out, err := exec.Command("go", append(args, "-nodecount=30", bin, path)...).CombinedOutput()
		if err != nil {
			s.logf("pprof: go tool pprof %s: %v", path, err)
		}
		top = append(append(top, "$ go tool pprof "+mode+" -nodecount=30\n"...), out...)
	}
	os.WriteFile(strings.TrimSuffix(path, ".pprof")+".top.txt", top, 0o644)
	r.Profile = path
	cpu := ""
	if cpu1 := s.daemonCPU(r); cpu0 >= 0 && cpu1 >= 0 {
		// CPU seconds per run compare two binaries on a loaded machine better than wall time.
		cpu = fmt.Sprintf(", daemon CPU %.2fs per run", (cpu1-cpu0)/float64(runs))
	}
	s.logf("pprof: %s (%d runs in %.0fs%s)", path, runs, time.Since(start).Seconds(), cpu)
}

// daemonCPU returns the daemon's user+system CPU seconds so far (/proc/PID/stat), or -1
// when the row runs in this process or the figure cannot be read.
func (s *suite) daemonCPU(r *Row) float64 {
	if r.inProcess || s.d == nil || s.d.Cmd.Process == nil {
		return -1
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.d.Cmd.Process.Pid))
	if err != nil {
		return -1
	}
	// Fields after the command name (which may hold spaces) start at ") ": utime and stime
	// are fields 14 and 15 of the line, 12 and 13 after it.
	i := strings.LastIndexByte(string(data), ')')
	f := strings.Fields(string(data[i+1:]))
	if i < 0 || len(f) < 13 {
		return -1
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return (ut + st) / clockTicks
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times (100 on Linux everywhere).
const clockTicks = 100

// profileSelf writes a CPU profile of this process over d to path.
func profileSelf(d time.Duration, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return err
	}
	time.Sleep(d)
	pprof.StopCPUProfile()
	return f.Close()
}

func fetchProfile(url, path string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// why says why a row is profiled.
func (r *Row) why() string {
	if r.Result == "MISS" {
		return "missed its target"
	}
	return "matches -pprof-rows"
}

// slug turns a row's figure into a file name.
func slug(s string) string {
	var b strings.Builder
	dash := false
	for _, c := range strings.ToLower(s) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			b.WriteRune(c)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
		if b.Len() >= 60 {
			break
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}
