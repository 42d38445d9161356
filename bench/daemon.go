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
	Repo   string
	Cmd    *exec.Cmd
	Client *api.Client
	done   chan struct{}
	mu     sync.Mutex
	dirs   []string // mount points made through it
}

// StartDaemon starts `bin --repo repoDir serve` and waits for its socket.
func StartDaemon(bin, repoDir, logPath string, cl *Cleanup) (*Daemon, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--repo", repoDir, "serve")
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group: Ctrl-C reaches the driver, which stops the daemon in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	d := &Daemon{Repo: repoDir, Cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); logf.Close(); close(d.done) }()
	cl.Add(d.Stop)
	sock := repo.SocketPath(repoDir)
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case <-d.done:
			return nil, fmt.Errorf("agentfs serve exited at start; see %s", logPath)
		default:
		}
		if c, err := api.Dial(sock); err == nil {
			d.Client = c
			return d, nil
		}
	}
	return nil, fmt.Errorf("agentfs serve did not answer on %s within 20s; see %s", sock, logPath)
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
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, dir := range d.dirs {
		if isMountPoint(dir) {
			syscall.Unmount(dir, syscall.MNT_DETACH)
		}
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
