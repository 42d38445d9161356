package bench

// Agent workloads (issue 17): what agents actually run in a branch, each beside a plain
// directory (and any comparison side). Everything is generated at run time and offline:
// a Go module that imports only the standard library, built with GOPROXY=off and a Go build
// cache inside the tree, and a Node-style dependency tree installed from a local tarball.

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// NodeTree describes the generated dependency tree.
type NodeTree struct {
	Tarball string
	Files   int
	Bytes   int64
}

// MakeNodeTarball writes path, a tarball of a node_modules tree of at least files small
// files laid out as npm installs them (package.json, README, LICENSE, lib/ and dist/ per
// package, scoped packages, nested node_modules), unless it exists. The content is
// deterministic, so every side installs the same bytes.
func MakeNodeTarball(path string, files int) (NodeTree, error) {
	out := NodeTree{Tarball: path}
	f, err := os.Create(path + ".tmp")
	if err != nil {
		return out, err
	}
	tw := tar.NewWriter(f)
	rng := rand.New(rand.NewPCG(17, 17))
	now := time.Unix(1_700_000_000, 0)
	add := func(name string, body []byte) error {
		out.Files++
		out.Bytes += int64(len(body))
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), ModTime: now, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(body)
		return err
	}
	text := func(n int, seed string) []byte {
		var b strings.Builder
		for b.Len() < n {
			fmt.Fprintf(&b, "// %s: %x helper %d\n", seed, rng.Uint64(), rng.IntN(1000))
			fmt.Fprintf(&b, "function f%x(a, b) { return a + b * %d; }\n", rng.Uint32(), rng.IntN(100))
		}
		return []byte(b.String())
	}
	pkg := 0
	err = func() error {
		for out.Files < files {
			name := fmt.Sprintf("pkg-%04d", pkg)
			if pkg%7 == 0 {
				name = fmt.Sprintf("@scope%d/%s", pkg%13, name)
			}
			root := "node_modules/" + name
			if pkg%11 == 5 { // a nested dependency of the previous package
				root = fmt.Sprintf("node_modules/pkg-%04d/node_modules/%s", pkg-1, name)
			}
			pkg++
			meta := fmt.Sprintf("{\n  \"name\": %q,\n  \"version\": \"1.%d.%d\",\n  \"main\": \"lib/index.js\",\n  \"license\": \"MIT\"\n}\n", name, pkg%10, pkg%7)
			if err := add(root+"/package.json", []byte(meta)); err != nil {
				return err
			}
			if err := add(root+"/README.md", text(300+rng.IntN(3000), name)); err != nil {
				return err
			}
			if err := add(root+"/LICENSE", []byte("MIT License\n\nPermission is hereby granted, free of charge...\n")); err != nil {
				return err
			}
			for i := range 5 + rng.IntN(30) {
				dir := "lib"
				if i%3 == 2 {
					dir = "dist"
				}
				if err := add(fmt.Sprintf("%s/%s/m%02d.js", root, dir, i), text(200+rng.IntN(4000), name)); err != nil {
					return err
				}
			}
		}
		return nil
	}()
	if cerr := errors.Join(tw.Close(), f.Close()); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path + ".tmp")
		return out, err
	}
	return out, os.Rename(path+".tmp", path)
}

// NodeWork holds the figures of RunNodeWorkload.
type NodeWork struct {
	Install, Find, Grep, GitStatus Value
}

// RunNodeWorkload installs the tree (tar -x of the tarball, timed), commits it to a new git
// repository (untimed), then times find, grep -r and git status over it (one warm-up run,
// then runs runs each; the kernel's caches stay as the install left them).
func RunNodeWorkload(dir, tarball string, runs int) (NodeWork, error) {
	var out NodeWork
	app := filepath.Join(dir, "app")
	if err := os.MkdirAll(app, 0o755); err != nil {
		return out, err
	}
	defer os.RemoveAll(app)
	if err := os.WriteFile(filepath.Join(app, "package.json"), []byte("{\n  \"name\": \"app\",\n  \"private\": true\n}\n"), 0o644); err != nil {
		return out, err
	}
	// Start without a writeback backlog of what ran before (the other sides, the repository
	// on the same disk): with one, a plain directory's install took 0.7 s to 7 s.
	quiesce()
	d, err := run(app, "tar", "-xf", tarball)
	if err != nil {
		return out, err
	}
	out.Install = Value{Dur: d}
	git := []string{"git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", "-c", "gc.auto=0"}
	for _, args := range [][]string{{"init", "-q"}, {"add", "-A"}, {"commit", "-q", "-m", "install"}} {
		if _, err := run(app, git[0], append(git[1:], args...)...); err != nil {
			return out, err
		}
	}
	timed := func(name string, args ...string) (Value, error) {
		var s []time.Duration
		for i := 0; i <= runs; i++ {
			d, err := run(app, name, args...)
			if err != nil {
				return Value{}, err
			}
			if i > 0 {
				s = append(s, d)
			}
		}
		return Latencies(s), nil
	}
	if out.Find, err = timed("find", "node_modules", "-name", "*.js", "-newer", "package.json"); err != nil {
		return out, err
	}
	// A pattern no file holds: grep reads every byte.
	if out.Grep, err = timed("sh", "-c", "grep -r -q 'no such token anywhere 0xdeadbeef' node_modules || test $? = 1"); err != nil {
		return out, err
	}
	if out.GitStatus, err = timed(git[0], append(git[1:], "status", "--porcelain")...); err != nil {
		return out, err
	}
	return out, nil
}

// GoModule is a generated Go module of pkgs packages with files files each, importing only
// the standard library, with tests. Variant changes one constant in every package, so
// that agents building different variants share nothing in their build caches.
type GoModule struct {
	Pkgs, Files int
}

// Write writes the module into dir (created) with the given variant.
func (m GoModule) Write(dir string, variant int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/agentwork\n\ngo 1.22\n"), 0o644); err != nil {
		return err
	}
	for p := range m.Pkgs {
		pd := filepath.Join(dir, fmt.Sprintf("pkg%02d", p))
		if err := os.MkdirAll(pd, 0o755); err != nil {
			return err
		}
		imp := ""
		if p > 0 { // a chain of dependencies, so the build has an order
			imp = fmt.Sprintf("\tdep \"example.com/agentwork/pkg%02d\"\n", p-1)
		}
		for f := range m.Files {
			var b strings.Builder
			fmt.Fprintf(&b, "package pkg%02d\n\nimport (\n\t\"fmt\"\n\t\"sort\"\n\t\"strconv\"\n\t\"strings\"\n", p)
			if f == 0 {
				b.WriteString(imp)
			}
			b.WriteString(")\n\n")
			if f == 0 {
				fmt.Fprintf(&b, "// Variant is the agent's change.\nconst Variant = %d\n\n", variant)
				if p > 0 {
					b.WriteString("// Up calls the package below.\nfunc Up(n int) int { return dep.Up(n) + Variant }\n\n")
				} else {
					b.WriteString("// Up is the bottom of the chain.\nfunc Up(n int) int { return n + Variant }\n\n")
				}
			}
			for fn := range 12 {
				fmt.Fprintf(&b, `// F%[1]d_%[2]d sorts, joins and parses.
func F%[1]d_%[2]d(in []string) (string, int, error) {
	s := append([]string(nil), in...)
	sort.Strings(s)
	n := 0
	for i, v := range s {
		if x, err := strconv.Atoi(v); err == nil {
			n += x * (i + %[2]d)
		}
	}
	return fmt.Sprintf("%%s/%%d", strings.Join(s, ","), n), n, nil
}

`, f, fn)
			}
			if err := os.WriteFile(filepath.Join(pd, fmt.Sprintf("f%02d.go", f)), []byte(b.String()), 0o644); err != nil {
				return err
			}
		}
		test := fmt.Sprintf(`package pkg%02d

import "testing"

func TestF(t *testing.T) {
	if _, n, err := F0_1([]string{"3", "1", "x"}); err != nil || n != 1*1+3*2 {
		t.Fatalf("got %%d, %%v", n, err)
	}
	if Up(1) < 1 {
		t.Fatal("Up")
	}
}
`, p)
		if err := os.WriteFile(filepath.Join(pd, "f_test.go"), []byte(test), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// goEnv is the environment of a build in tree: offline, the standard library only, the
// build cache inside the tree (so the build's many small cache files go through the
// filesystem being measured).
func goEnv(tree string) []string {
	env := []string{}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "GOCACHE", "GOFLAGS", "GOPROXY", "GOPATH", "GOTOOLCHAIN", "GOWORK", "CGO_ENABLED", "HOME", "GOENV":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "GOCACHE="+filepath.Join(tree, ".gocache"), "GOFLAGS=-mod=mod", "GOPROXY=off",
		"GOPATH="+filepath.Join(tree, ".gopath"), "GOTOOLCHAIN=local", "GOWORK=off", "CGO_ENABLED=0",
		"HOME="+tree, "GOENV=off", "GOTELEMETRY=off")
}

func goCmd(tree string, args ...string) (time.Duration, error) {
	cmd := exec.Command("go", args...)
	cmd.Dir = tree
	cmd.Env = goEnv(tree)
	t := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(t)
	if err != nil {
		return d, fmt.Errorf("go %s in %s: %v: %s", strings.Join(args, " "), tree, err, strings.TrimSpace(string(out)))
	}
	return d, nil
}

// SeedGoTree writes the module (variant 0) into tree and builds and tests it once, so that
// the standard library is in the tree's build cache (untimed preparation: an agent's tree
// starts from a checkpoint that has it).
func SeedGoTree(tree string, m GoModule) error {
	if err := m.Write(tree, 0); err != nil {
		return err
	}
	_, err := goCmd(tree, "test", "-count=1", "./...")
	return err
}

// GoBuild holds the figures of RunGoBuild.
type GoBuild struct {
	Build, Test Value
}

// RunGoBuild times `go build ./...` then `go test -count=1 ./...` of variant of the module
// in a seeded tree (see SeedGoTree): every package of the module is compiled again, the
// standard library comes from the cache in the tree.
func RunGoBuild(tree string, m GoModule, variant int) (GoBuild, error) {
	var out GoBuild
	if err := m.Write(tree, variant); err != nil {
		return out, err
	}
	d, err := goCmd(tree, "build", "./...")
	if err != nil {
		return out, err
	}
	out.Build = Value{Dur: d}
	if d, err = goCmd(tree, "test", "-count=1", "./..."); err != nil {
		return out, err
	}
	out.Test = Value{Dur: d}
	return out, nil
}

// RunParallelBuilds runs RunGoBuild in every tree at once (agent i builds variant i+1) and
// returns the wall time until the last one finished.
func RunParallelBuilds(trees []string, m GoModule) (Value, error) {
	var wg sync.WaitGroup
	errs := make([]error, len(trees))
	t := time.Now()
	for i, tree := range trees {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = RunGoBuild(tree, m, i+1)
		}()
	}
	wg.Wait()
	d := time.Since(t)
	if err := errors.Join(errs...); err != nil {
		return Value{}, err
	}
	return Value{Dur: d}, nil
}

// copyTree copies src to dst with cp -a (untimed preparation of plain sides).
func copyTree(src, dst string) error {
	_, err := run(filepath.Dir(dst), "cp", "-a", src, dst)
	return err
}

// workloads runs the agent workloads on every side (agentfs, plain, comparisons).
func (s *suite) workloads(ctx context.Context, d *Daemon) {
	c := s.cfg
	w := workloadSizes(c)
	tree, err := MakeNodeTarball(filepath.Join(c.WorkDir, "node-tree.tar"), w.nodeFiles)
	params := fmt.Sprintf("%d files, %s, from a local tarball", tree.Files, fmtBytes(tree.Bytes))
	if err != nil {
		s.row("agent workloads", "npm-style install", "", errValue(err), nil)
	} else {
		s.fileRows("node", func(dir string) ([]Value, error) {
			w, err := RunNodeWorkload(dir, tree.Tarball, c.GitRuns)
			return []Value{w.Install, w.Find, w.Grep, w.GitStatus}, err
		}, []*Row{
			newRow("agent workloads", "install of a node_modules tree (tar -x)", params, forIssue(17, ratioBelow(1.1, "time"))),
			newRow("agent workloads", "find node_modules -name '*.js' -newer", fmt.Sprintf("%d files, warm, %d runs after 1 warm-up", tree.Files, c.GitRuns), forIssue(17, ratioBelow(2, "p50"))),
			newRow("agent workloads", "grep -r over node_modules (no match)", fmt.Sprintf("%s, warm, %d runs after 1 warm-up", fmtBytes(tree.Bytes), c.GitRuns), nil),
			newRow("agent workloads", "git status over node_modules", fmt.Sprintf("%d files committed, clean, %d runs after 1 warm-up", tree.Files, c.GitRuns), forIssue(17, ratioBelow(2, "p50"))),
		})
	}
	m := GoModule{Pkgs: w.goPkgs, Files: 8}
	mparams := fmt.Sprintf("%d packages x %d files, standard library only, offline, build cache in the tree (seeded); median of %d changed variants", m.Pkgs, m.Files, w.buildRuns)
	s.fileRows("gobuild", func(dir string) ([]Value, error) {
		tree := filepath.Join(dir, "mod")
		if err := SeedGoTree(tree, m); err != nil {
			return nil, err
		}
		// One build of a few seconds swings by 20% on a shared machine: take the median.
		var builds, tests []time.Duration
		for v := 1; v <= w.buildRuns; v++ {
			w, err := RunGoBuild(tree, m, v)
			if err != nil {
				return nil, err
			}
			builds, tests = append(builds, w.Build.Dur), append(tests, w.Test.Dur)
		}
		return []Value{{Dur: Latencies(builds).P50}, {Dur: Latencies(tests).P50}}, nil
	}, []*Row{
		newRow("agent workloads", "go build ./... of a changed module", mparams, forIssue(17, ratioBelow(1.1, "time"))),
		newRow("agent workloads", "go test ./... of a changed module", mparams, forIssue(17, ratioBelow(1.1, "time"))),
	})
	s.parallelBuilds(ctx, d, m, w.buildAgents)
}

type workloadSize struct{ nodeFiles, goPkgs, buildRuns, buildAgents int }

// workloadSizes: the issue's sizes in `make bench`, smaller ones in bench-quick.
func workloadSizes(c Config) workloadSize {
	if c.Quick {
		return workloadSize{nodeFiles: 2_000, goPkgs: 2, buildRuns: 1, buildAgents: 2} // CI runs bench-quick: keep it short
	}
	return workloadSize{nodeFiles: 20_000, goPkgs: 8, buildRuns: 3, buildAgents: 16}
}

// parallelBuilds: Agents agents each build and test their own variant of the module on
// their own branch at once. agentfs: one seeded checkpoint forked into Agents mounted
// branches; plain and comparisons: Agents copies of a seeded tree.
func (s *suite) parallelBuilds(ctx context.Context, d *Daemon, m GoModule, n int) {
	row := newRow("agent workloads", fmt.Sprintf("%d agents: go build + go test in parallel on %d branches", n, n),
		fmt.Sprintf("%d packages x %d files each, own variant, seeded build cache in each tree; wall time until the last", m.Pkgs, m.Files), forIssue(17, ratioBelow(1.1, "time")))
	defer s.add(row)
	for _, sd := range s.sides {
		s.logf("workloads: %d parallel builds on %s", n, sd.name)
		quiesce()
		v, err := func() (Value, error) {
			base := filepath.Join(sd.dir, "pbuild")
			defer os.RemoveAll(base)
			seed := filepath.Join(base, "seed")
			if err := SeedGoTree(seed, m); err != nil {
				return Value{}, err
			}
			trees := make([]string, n)
			if sd.name == "agentfs" {
				// The seed is in the mounted branch main: checkpoint it, fork a branch per
				// agent and mount each (as an orchestrator would).
				info, err := d.Client.Checkpoint(ctx, "main", "", "seeded build tree")
				if err != nil {
					return Value{}, err
				}
				rel, err := filepath.Rel(sd.dir, seed)
				if err != nil {
					return Value{}, err
				}
				for i := range trees {
					name := fmt.Sprintf("build%02d", i)
					mnt := filepath.Join(s.cfg.WorkDir, "builds", name)
					if _, err := d.Client.CreateBranch(ctx, name, info.ID); err != nil {
						return Value{}, err
					}
					if err := d.Mount(ctx, name, mnt); err != nil {
						return Value{}, err
					}
					defer d.Client.Unmount(ctx, mnt)
					trees[i] = filepath.Join(mnt, rel)
				}
			} else {
				for i := range trees {
					trees[i] = filepath.Join(base, fmt.Sprintf("agent%02d", i))
					if err := copyTree(seed, trees[i]); err != nil {
						return Value{}, err
					}
				}
			}
			return RunParallelBuilds(trees, m)
		}()
		if err != nil {
			v = errValue(err)
		}
		if sd.name == "agentfs" {
			row.AgentFS = v
		} else {
			s.attach(row, sd, v)
		}
	}
}
