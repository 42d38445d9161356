package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/agentfs/agentfs/api"
	"github.com/agentfs/agentfs/remote"
)

// Progress bars on stderr for long commands (import, export, push, pull, clone, gc, fsck), drawn by
// github.com/schollz/progressbar: phase, count, percentage and ETA where the total is known,
// a spinner with the count where it is not. Nothing is drawn when stderr is not a terminal
// (scripts, CI, pipes), with --quiet, or with --json.

var quiet bool // --quiet / -q (main.go)

// quietForJSON draws no bars for a command run with --json: its output is for a program,
// which may read stdout and stderr from one terminal (an agent's pty), and must find there
// the JSON value alone.
func quietForJSON(c *cobra.Command, _ []string) {
	if f := c.Flags().Lookup("json"); f != nil && f.Value.String() == "true" {
		quiet = true
	}
}

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

// update draws done of total (0: not known, a spinner with the count); unit "bytes" shows
// sizes and a rate in bytes, anything else a count of objects.
func (p *phaseBar) update(phase string, done, total int64, unit, detail string) {
	if p.bar == nil || phase != p.phase || total != p.total {
		if p.bar != nil {
			p.bar.Finish()
		}
		max := total
		if max <= 0 {
			max = -1 // unknown: a spinner with the count
		}
		opts := []progressbar.Option{
			progressbar.OptionSetWriter(os.Stderr),
			progressbar.OptionSetDescription(phase),
			progressbar.OptionSetWidth(30),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(total > 0),
			progressbar.OptionThrottle(100 * time.Millisecond),
			progressbar.OptionSetRenderBlankState(true),
			progressbar.OptionClearOnFinish(),
		}
		if unit == "bytes" {
			opts = append(opts, progressbar.OptionShowBytes(true), progressbar.OptionUseIECUnits(true))
		} else {
			opts = append(opts, progressbar.OptionShowIts(), progressbar.OptionSetItsString("objects"))
		}
		p.bar = progressbar.NewOptions64(max, opts...)
		p.phase, p.total = phase, total
	}
	if detail != "" {
		p.bar.Describe(phase + " " + detail)
	}
	if total > 0 && done > total {
		done = total // a file grew after the scan
	}
	p.bar.Set64(done)
}

func (p *phaseBar) finish() {
	if p.bar != nil {
		p.bar.Finish()
	}
}

// withEvents returns ctx listening to the events of a long call (import, export, gc,
// fsck; api/events.go), the same through the daemon or not: progress draws a bar on a
// terminal (not with --quiet), warnings are printed on stderr. end clears the bar.
func withEvents(ctx context.Context) (_ context.Context, end func()) {
	var mu sync.Mutex
	p := &phaseBar{}
	draw := drawProgress()
	ctx = api.WithEvents(ctx, func(e api.Event) {
		mu.Lock()
		defer mu.Unlock()
		if e.Warning != "" {
			if p.bar != nil {
				p.bar.Clear()
			}
			fmt.Fprintln(os.Stderr, "agentfs: "+e.Warning)
			return
		}
		if draw {
			p.update(e.Phase, e.Done, e.Total, e.Unit, "")
		}
	})
	return ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		p.finish()
	}
}

// showProgress draws the progress of a remote operation (push, pull, clone) while it runs:
// the first one in flight of that op, remote and branch (empty: any), since the daemon may
// run other commands' transfers at the same time. It polls the service, so it works the same
// through the daemon. The returned func stops it and clears the bar.
func showProgress(ctx context.Context, s api.Service, op, rem, br string) (stop func()) {
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
			if err != nil {
				continue
			}
			i := slices.IndexFunc(ps, func(p remote.Progress) bool {
				return p.Op == op && (rem == "" || p.Remote == rem) && (br == "" || p.Branch == br)
			})
			if i < 0 {
				continue
			}
			t := ps[i]
			detail := ""
			if t.Bytes > 0 {
				detail = mib(t.Bytes)
			}
			p.update(fmt.Sprintf("%s %s/%s: %s", t.Op, t.Remote, t.Branch, t.Phase), t.Done, t.Total, "", detail)
		}
	}()
	return func() { cancel(); wg.Wait() }
}
