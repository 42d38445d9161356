package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/sys/unix"

	"github.com/agentfs/agentfs/api"
	"github.com/agentfs/agentfs/gc"
)

// Progress bars on stderr for long commands (push, pull, clone, gc, fsck), drawn by
// github.com/schollz/progressbar: phase, count, percentage and ETA where the total is known,
// a spinner with the count where it is not. Nothing is drawn when stderr is not a terminal
// (scripts, CI, pipes) or with --quiet.

var quiet bool // --quiet / -q (main.go)

func drawProgress() bool {
	if quiet {
		return false
	}
	_, err := unix.IoctlGetTermios(int(os.Stderr.Fd()), unix.TCGETS)
	return err == nil
}

// phaseBar draws one bar per phase of an operation; a new phase replaces the bar.
type phaseBar struct {
	bar   *progressbar.ProgressBar
	phase string
	total int64
}

func (p *phaseBar) update(phase string, done, total int64, detail string) {
	if p.bar == nil || phase != p.phase || total != p.total {
		if p.bar != nil {
			p.bar.Finish()
		}
		max := total
		if max <= 0 {
			max = -1 // unknown: a spinner with the count
		}
		p.bar = progressbar.NewOptions64(max,
			progressbar.OptionSetWriter(os.Stderr),
			progressbar.OptionSetDescription(phase),
			progressbar.OptionSetWidth(30),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("objects"),
			progressbar.OptionSetPredictTime(total > 0),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetRenderBlankState(true),
			progressbar.OptionClearOnFinish(),
		)
		p.phase, p.total = phase, total
	}
	if detail != "" {
		p.bar.Describe(phase + " " + detail)
	}
	p.bar.Set64(done)
}

func (p *phaseBar) finish() {
	if p.bar != nil {
		p.bar.Finish()
	}
}

// progressFunc returns a gc/fsck progress callback that draws bars, or nil when nothing
// is drawn. The callback only fires when the repository is open in this process: through
// the daemon, the reply comes at the end.
func progressFunc() func(gc.Progress) {
	if !drawProgress() {
		return nil
	}
	p := &phaseBar{}
	f := func(g gc.Progress) { p.update(g.Phase, g.Done, g.Total, "") }
	restore := api.SetProcessProgress(f) // the in-process client cannot carry f (api/progresshook.go)
	active = func() { restore(); p.finish() }
	return f
}

var active func() // ends the bar of progressFunc; called by endProgress

func endProgress(f func(gc.Progress)) {
	if f != nil && active != nil {
		active()
		active = nil
	}
}

// showProgress draws the progress of a remote operation (push, pull, clone) while it runs.
// It polls the service, so it works the same through the daemon. The returned func stops
// it and clears the bar.
func showProgress(ctx context.Context, s api.Service) (stop func()) {
	if !drawProgress() {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		p := &phaseBar{}
		defer p.finish()
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			ps, err := s.RemoteProgress(ctx)
			if err != nil || len(ps) == 0 {
				continue
			}
			op := ps[0] // one command runs one operation
			detail := ""
			if op.Bytes > 0 {
				detail = mib(op.Bytes)
			}
			p.update(fmt.Sprintf("%s %s/%s: %s", op.Op, op.Remote, op.Branch, op.Phase), op.Done, op.Total, detail)
		}
	}()
	return func() { cancel(); wg.Wait() }
}
