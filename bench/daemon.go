package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/agentfs/agentfs/api"
	"github.com/agentfs/agentfs/internal/repo"
)

// Cleanup runs registered functions once, in reverse order: on normal exit, on failure and
// on Ctrl-C (the driver calls Run from its signal handler).
type Cleanup struct {
	mu  sync.Mutex
	fns []func()
}

func (c *Cleanup) Add(fn func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fns = append(c.fns, fn)
}

func (c *Cleanup) Run() {
	c.mu.Lock()
	fns := c.fns
	c.fns = nil
	c.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}

// Daemon is a real `agentfs serve` child process.
type Daemon struct {
	Repo      string
	Cmd       *exec.Cmd
	Client    *api.Client
	PprofAddr string // AGENTFS_PPROF of the daemon, if profiling was asked for
	bin, log  string
	done      chan struct{}
	mu        sync.Mutex
	dirs      []string // mount points made through it
}

// StartDaemon starts `bin --repo repoDir serve` and waits for its socket. If pprofAddr is
// set the daemon serves net/http/pprof there (AGENTFS_PPROF).
func StartDaemon(bin, repoDir, logPath, pprofAddr string, cl *Cleanup) (*Daemon, error) {
	d := &Daemon{Repo: repoDir, PprofAddr: pprofAddr, bin: bin, log: logPath}
	if err := d.start(); err != nil {
		return nil, err
	}
	cl.Add(d.Stop)
	return d, nil
}

func (d *Daemon) start() error {
	logf, err := os.OpenFile(d.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(d.bin, "--repo", d.Repo, "serve")
	cmd.Stdout, cmd.Stderr = logf, logf
	if d.PprofAddr != "" {
		cmd.Env = append(os.Environ(), "AGENTFS_PPROF="+d.PprofAddr)
	}
	// Own process group: Ctrl-C reaches the driver, which stops the daemon in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	done := make(chan struct{})
	d.Cmd, d.done = cmd, done
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	sock := repo.SocketPath(d.Repo)
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case <-done:
			return fmt.Errorf("agentfs serve exited at start; see %s", d.log)
		default:
		}
		if c, err := api.Dial(sock); err == nil {
			// The socket answers before the daemon has restored its saved mounts; the
			// first call waits until it has.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_, err = c.Mounts(ctx)
			cancel()
			if err != nil {
				return fmt.Errorf("agentfs serve does not answer: %v; see %s", err, d.log)
			}
			d.Client = c
			return nil
		}
	}
	return fmt.Errorf("agentfs serve did not answer on %s within 20s; see %s", sock, d.log)
}

// Restart stops the daemon and starts it again on the same repository, so that its
// in-process caches start empty, and makes sure ref is mounted at dir again (the daemon
// restores its saved mounts itself; this mounts it if it did not).
func (d *Daemon) Restart(ctx context.Context, ref, dir string) error {
	d.stopProcess()
	var st syscall.Statfs_t
	if isMountPoint(dir) && syscall.Statfs(dir, &st) != nil {
		syscall.Unmount(dir, syscall.MNT_DETACH) // left by a daemon that died
	}
	if err := d.start(); err != nil {
		return err
	}
	if isMountPoint(dir) && syscall.Statfs(dir, &st) == nil {
		return nil
	}
	return d.Mount(ctx, ref, dir)
}

// Mount mounts ref at dir (created) through the daemon.
func (d *Daemon) Mount(ctx context.Context, ref, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	d.mu.Lock()
	d.dirs = append(d.dirs, dir)
	d.mu.Unlock()
	_, err := d.Client.Mount(ctx, ref, dir, api.MountOptions{})
	return err
}

// Stop asks the daemon to flush and unmount (SIGTERM), kills it if it does not exit, and
// detaches any mount it left behind.
func (d *Daemon) Stop() {
	d.stopProcess()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, dir := range d.dirs {
		for i := 0; i < 4 && isMountPoint(dir); i++ {
			syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	}
}

// stopProcess stops the daemon (SIGTERM, then SIGKILL after 60 s). Its mounts stay in the
// repository's mount table, which a new daemon restores.
func (d *Daemon) stopProcess() {
	select {
	case <-d.done:
	default:
		d.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(60 * time.Second):
			d.Cmd.Process.Kill()
			<-d.done
		}
	}
	if d.Client != nil {
		d.Client.Close()
		d.Client = nil
	}
}

// Exited says whether the daemon process has exited, and how.
func (d *Daemon) Exited() (bool, string) {
	select {
	case <-d.done:
		return true, d.Cmd.ProcessState.String()
	default:
		return false, ""
	}
}

// RSS returns the daemon's resident set size (VmRSS).
func (d *Daemon) RSS() (int64, error) { return VmRSS(d.Cmd.Process.Pid) }

// VmRSS reads VmRSS of a process from /proc/PID/status.
func VmRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			fields := strings.Fields(rest)
			kb, err := strconv.ParseInt(fields[0], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

func isMountPoint(dir string) bool {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	abs, _ := filepath.Abs(dir)
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[4] == abs {
			return true
		}
	}
	return false
}

// FsType returns the filesystem type of the mount holding dir, from /proc/self/mountinfo.
func FsType(dir string) string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "?"
	}
	abs, _ := filepath.Abs(dir)
	best, typ := "", "?"
	for _, line := range strings.Split(string(data), "\n") {
		mp, rest, ok := strings.Cut(line, " - ")
		f := strings.Fields(mp)
		if !ok || len(f) < 5 {
			continue
		}
		m := f[4]
		if (abs == m || strings.HasPrefix(abs, strings.TrimSuffix(m, "/")+"/")) && len(m) >= len(best) {
			best = m
			if r := strings.Fields(rest); len(r) > 1 {
				typ = r[0] + " (" + r[1] + ")"
			}
		}
	}
	return typ
}

// sampleRSS runs fn while sampling the VmRSS of pid every 20 ms (pid 0: no sampling) and
// returns fn's value and the peak.
func sampleRSS(pid int, fn func() (Value, error)) (Value, int64, error) {
	var peak int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	if pid != 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if b, err := VmRSS(pid); err == nil && b > peak {
					peak = b
				}
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		}()
	}
	v, err := fn()
	close(stop)
	wg.Wait()
	return v, peak, err
}
