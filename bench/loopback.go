package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// The loopback column: the go-fuse loopback example (fs.NewLoopbackRoot behind a FUSE mount)
// over a directory of the same disk as the plain directory. It shows what FUSE alone costs.
//
// It runs as its own process, built from the go-fuse module this repository already requires,
// exactly as shipped: the agentfs daemon is a separate process too, so both columns pay the
// same context switches between the workload and the server, and neither server shares a Go
// runtime (scheduler, GC) with the workload that measures it. An in-process loopback would
// flatter FUSE.

// LoopbackPkg is the go-fuse example the loopback column runs.
const LoopbackPkg = "github.com/hanwen/go-fuse/v2/example/loopback"

// BuildLoopback builds the go-fuse loopback example into out with the go command. It runs in
// the current directory, which must be inside this module (make bench runs from its root), so
// that the example is built from the go-fuse version in go.mod.
func BuildLoopback(out string) error {
	cmd := exec.Command("go", "build", "-o", out, LoopbackPkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v: %s (run from the agentfs source tree, or pass -loopback BIN)", LoopbackPkg, err, b)
	}
	return nil
}

// Loopback is a running loopback example serving Orig at Dir.
type Loopback struct {
	Dir, Orig string
	cmd       *exec.Cmd
	done      chan struct{}
}

// StartLoopback starts bin (the loopback example) serving orig at dir, both created, with
// the example's own options (1 s entry and attribute timeouts) plus -directmount as the
// agentfs daemon mounts, and waits for the mount. cpuprofile, if set, is written at Stop.
func StartLoopback(bin, orig, dir, logPath, cpuprofile string, cl *Cleanup) (*Loopback, error) {
	for _, d := range []string{orig, dir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	args := []string{"-q", "-directmount"}
	if cpuprofile != "" {
		args = append(args, "-cpuprofile", cpuprofile)
	}
	cmd := exec.Command(bin, append(args, dir, orig)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	l := &Loopback{Dir: dir, Orig: orig, cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); logf.Close(); close(l.done) }()
	cl.Add(l.Stop)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case <-l.done:
			return nil, fmt.Errorf("the go-fuse loopback exited at start; see %s", logPath)
		default:
		}
		if isMountPoint(dir) {
			return l, nil
		}
	}
	l.Stop()
	return nil, fmt.Errorf("the go-fuse loopback did not mount %s within 10s; see %s", dir, logPath)
}

// Pid is the loopback server's process id.
func (l *Loopback) Pid() int { return l.cmd.Process.Pid }

// Stop unmounts (SIGTERM makes the example unmount and exit), kills the server if it does not
// exit, and detaches a mount left behind.
func (l *Loopback) Stop() {
	select {
	case <-l.done:
	default:
		l.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-l.done:
		case <-time.After(20 * time.Second):
			l.cmd.Process.Kill()
			<-l.done
		}
	}
	if isMountPoint(l.Dir) {
		syscall.Unmount(l.Dir, syscall.MNT_DETACH)
	}
}

// loopbackBinary returns the loopback example to run: bin if given, else one built into dir.
func loopbackBinary(bin, dir string) (string, error) {
	if bin != "" {
		return filepath.Abs(bin)
	}
	out := filepath.Join(dir, "go-fuse-loopback")
	return out, BuildLoopback(out)
}
