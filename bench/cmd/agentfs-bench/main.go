// Command agentfs-bench runs the agentfs benchmark suite (package bench) and prints a table
// of every figure: agentfs beside a plain directory on the same disk and beside the go-fuse
// loopback example mounted over that disk, with the ratios and the target of each figure.
// See docs/performance.md.
//
//	agentfs-bench -bin bin/agentfs [-quick] [-json FILE] [-markdown FILE] [-compare DIR]... [-workdir DIR]
//	              [-loopback BIN] [-only PARTS] [-pprof DIR [-pprof-rows REGEXP]]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/agentfs/agentfs/bench"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	bin := flag.String("bin", "bin/agentfs", "the agentfs binary to benchmark")
	quick := flag.Bool("quick", false, "small sizes (every row, about 3 minutes)")
	fleetOnly := flag.Bool("fleet", false, "run only the fleet rows (thousands of branches, mount cycles, parallel checkpoints, gc pauses)")
	jsonOut := flag.String("json", "", "also write the figures as JSON to `FILE`")
	mdOut := flag.String("markdown", "", "also write the table as markdown to `FILE`")
	work := flag.String("workdir", "", "scratch `DIR` (default: a new directory under /var/tmp); the plain directory lives here")
	loopback := flag.String("loopback", "", "the go-fuse loopback example `BIN` (default: go build "+bench.LoopbackPkg+" from this module)")
	only := flag.String("only", "", "run only these comma-separated parts: "+strings.Join(bench.Parts, ","))
	pprofDir := flag.String("pprof", "", "for each missed target, write a CPU profile of the daemon (heap snapshots for the RSS row) and pprof -top of it into `DIR`")
	pprofRows := flag.String("pprof-rows", "", "with -pprof, also profile the rows whose figure matches `REGEXP`, met or not")
	var compare multi
	flag.Var(&compare, "compare", "also run the file workloads in `DIR` (any mounted filesystem; repeatable)")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "agentfs-bench: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	abs, err := filepath.Abs(*bin)
	if err == nil {
		_, err = os.Stat(abs)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "agentfs-bench: binary %s: %v (run make build)\n", *bin, err)
		os.Exit(2)
	}
	for i, c := range compare {
		if compare[i], err = filepath.Abs(c); err != nil {
			fmt.Fprintln(os.Stderr, "agentfs-bench:", err)
			os.Exit(2)
		}
	}
	cfg := bench.Full()
	if *quick {
		cfg = bench.Quick()
	}
	cfg.Bin, cfg.Compare, cfg.Log = abs, compare, os.Stderr
	cfg.LoopbackBin = *loopback
	if *only != "" {
		for _, p := range strings.Split(*only, ",") {
			if !slices.Contains(bench.Parts, p) {
				fmt.Fprintf(os.Stderr, "agentfs-bench: -only: no part %q; the parts are %s\n", p, strings.Join(bench.Parts, ","))
				os.Exit(2)
			}
			cfg.Only = append(cfg.Only, p)
		}
	}
	if *pprofDir != "" {
		if cfg.PprofDir, err = filepath.Abs(*pprofDir); err != nil {
			fmt.Fprintln(os.Stderr, "agentfs-bench:", err)
			os.Exit(2)
		}
	}
	if *pprofRows != "" {
		if cfg.PprofRows, err = regexp.Compile(*pprofRows); err != nil {
			fmt.Fprintf(os.Stderr, "agentfs-bench: -pprof-rows: %v\n", err)
			os.Exit(2)
		}
	}
	if *work == "" {
		d, err := os.MkdirTemp("/var/tmp", "agentfs-bench-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "agentfs-bench:", err)
			os.Exit(1)
		}
		*work = d
	}
	cfg.WorkDir, _ = filepath.Abs(*work)

	cl := &bench.Cleanup{}
	cl.Add(func() { os.RemoveAll(cfg.WorkDir) })
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "agentfs-bench: %v: stopping the daemon, unmounting, cleaning up\n", s)
		cl.Run()
		os.Exit(130)
	}()

	start := time.Now()
	run := bench.Run
	if *fleetOnly {
		run = bench.RunFleet
	}
	rep, err := run(context.Background(), cfg, cl)
	cl.Run()
	signal.Stop(sig)
	code := 0
	if rep != nil {
		mode := "full"
		if *quick {
			mode = "quick"
		}
		fmt.Printf("\nagentfs benchmark (%s), %s, %s CPUs (%s), RAM %s, workdir on %s, took %.0fs, load average %s at the start and %s at the end\n\n",
			mode, rep.Started.Format(time.RFC3339), rep.Machine["nproc"], rep.Machine["cpu"], rep.Machine["ram"],
			rep.Machine["workdir_fs"], time.Since(start).Seconds(), rep.LoadStart, rep.LoadEnd)
		rep.Print(os.Stdout, compare)
		for _, r := range rep.Rows {
			if r.Profile != "" {
				fmt.Printf("profile of %q: %s (top: %s.top.txt)\n", r.Figure, r.Profile, strings.TrimSuffix(r.Profile, ".pprof"))
			}
		}
		if *jsonOut != "" {
			if err := rep.WriteJSON(*jsonOut); err != nil {
				fmt.Fprintln(os.Stderr, "agentfs-bench:", err)
				code = 1
			}
		}
		if *mdOut != "" {
			f, err := os.Create(*mdOut)
			if err == nil {
				rep.Markdown(f)
				err = f.Close()
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "agentfs-bench:", err)
				code = 1
			}
		}
		if rep.Failed > 0 {
			fmt.Fprintf(os.Stderr, "agentfs-bench: %d figure(s) failed (ERROR above)\n", rep.Failed)
			code = 1
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "agentfs-bench:", err)
		code = 1
	}
	os.Exit(code)
}
