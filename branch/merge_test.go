package branch

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// fileAt returns the content of a path in a workspace ("" and false if missing).
func fileAt(t *testing.T, ws *Workspace, p string) (string, bool) {
	t.Helper()
	ctx := context.Background()
	_, _, ino, err := resolve(ctx, ws, p)
	if errors.Is(err, syscall.ENOENT) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	n, _ := ws.GetAttr(ctx, ino)
	buf := make([]byte, n.Size)
	if _, err := ws.Read(ctx, ino, 0, buf); err != nil {
		t.Fatal(err)
	}
	return string(buf), true
}

func put(t *testing.T, ws *Workspace, p, content string) {
	t.Helper()
	ctx := context.Background()
	parent := uint64(RootIno)
	parts := strings.Split(p, "/")
	for _, part := range parts[:len(parts)-1] {
		n, err := ws.Lookup(ctx, parent, part)
		if errors.Is(err, syscall.ENOENT) {
			n, err = ws.Mkdir(ctx, parent, part, Attr{Mode: 0o755})
		}
		if err != nil {
			t.Fatal(err)
		}
		parent = n.Ino
	}
	writeFile(t, ws, parent, parts[len(parts)-1], []byte(content))
}

func setup(t *testing.T, files map[string]string, branches ...string) (*Engine, map[string]*Workspace) {
	t.Helper()
	ctx := context.Background()
	e := openEngine(t)
	e.CreateBranch(ctx, "main", "")
	main, _ := e.Workspace(ctx, "main")
	for p, c := range files {
		put(t, main, p, c)
	}
	if _, err := e.Checkpoint(ctx, "main", "base", ""); err != nil {
		t.Fatal(err)
	}
	ws := map[string]*Workspace{"main": main}
	for _, b := range branches {
		if _, err := e.CreateBranch(ctx, b, "main"); err != nil {
			t.Fatal(err)
		}
		ws[b], _ = e.Workspace(ctx, b)
	}
	return e, ws
}

func lines(n int, tag string) string {
	var sb strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&sb, "line %d %s\n", i, tag)
	}
	return sb.String()
}

func TestMergeCombinesIndependentChanges(t *testing.T) {
	ctx := context.Background()
	text := lines(40, "base")
	e, ws := setup(t, map[string]string{"a.txt": "a", "b.txt": "b", "dir/text.txt": text, "dir/keep": "k", "moved.txt": "m"}, "agent")
	// A rename on one side and an edit on the other combine; so do two new subdirectories.
	put(t, ws["main"], "moved.txt", "edited by main")
	if err := ws["agent"].Rename(ctx, RootIno, "moved.txt", RootIno, "renamed.txt", 0); err != nil {
		t.Fatal(err)
	}
	for b, sub := range map[string]string{"main": "sub1", "agent": "sub2"} {
		_, _, d, _ := resolve(ctx, ws[b], "dir")
		if _, err := ws[b].Mkdir(ctx, d, sub, Attr{Mode: 0o755}); err != nil {
			t.Fatal(err)
		}
	}
	// ours: edit a.txt, edit the top of text.txt, add dir/ours.
	put(t, ws["main"], "a.txt", "a changed by main")
	put(t, ws["main"], "dir/text.txt", strings.Replace(text, "line 1 base", "line 1 main", 1))
	put(t, ws["main"], "dir/ours", "o")
	// theirs: edit b.txt, edit the bottom of text.txt, add dir/theirs, rename keep.
	put(t, ws["agent"], "b.txt", "b changed by agent")
	put(t, ws["agent"], "dir/text.txt", strings.Replace(text, "line 38 base", "line 38 agent", 1))
	put(t, ws["agent"], "dir/theirs", "t")
	_, _, dirIno, _ := resolve(ctx, ws["agent"], "dir")
	if err := ws["agent"].Rename(ctx, dirIno, "keep", RootIno, "kept", 0); err != nil {
		t.Fatal(err)
	}
	res, err := e.Merge(ctx, "agent", "main", MergeOptions{})
	if err != nil {
		t.Fatalf("merge: %v (%v)", err, res)
	}
	want := map[string]string{
		"a.txt": "a changed by main", "b.txt": "b changed by agent", "dir/ours": "o", "dir/theirs": "t", "kept": "k",
		"renamed.txt":  "edited by main",
		"dir/text.txt": strings.Replace(strings.Replace(text, "line 1 base", "line 1 main", 1), "line 38 base", "line 38 agent", 1),
	}
	for p, c := range want {
		if got, ok := fileAt(t, ws["main"], p); !ok || got != c {
			t.Errorf("%s = %q (exists %v), want %q", p, got, ok, c)
		}
	}
	for _, p := range []string{"dir/keep", "moved.txt"} {
		if _, ok := fileAt(t, ws["main"], p); ok {
			t.Errorf("%s still there after the rename was merged", p)
		}
	}
	// The merge checkpoint has both parents; log shows it.
	c, _ := e.ReadCommit(ctx, res.Commit)
	if len(c.Parents) != 2 {
		t.Fatalf("merge checkpoint parents: %v", c.Parents)
	}
	log, _ := e.Log(ctx, "main")
	if log[0].ID != res.Commit {
		t.Fatal("log does not start with the merge")
	}
	// Link counts stay right: the tree dumps consistently with a fresh read.
	if d := dump(t, ws["main"]); !strings.Contains(d, "dir/ nlink=4") {
		t.Fatalf("dir nlink wrong:\n%s", d)
	}
	// Merging again is a no-op.
	if res, err := e.Merge(ctx, "agent", "main", MergeOptions{}); err != nil || !res.UpToDate {
		t.Fatalf("second merge: %v %v", res, err)
	}
}

func TestMergeConflictKinds(t *testing.T) {
	ctx := context.Background()
	type edit func(t *testing.T, ws *Workspace)
	rm := func(p string) edit {
		return func(t *testing.T, ws *Workspace) {
			parent, name, _, err := resolve(ctx, ws, p)
			if err != nil {
				t.Fatal(err)
			}
			if err := ws.Unlink(ctx, parent, name); err != nil {
				t.Fatal(err)
			}
		}
	}
	write := func(p, c string) edit { return func(t *testing.T, ws *Workspace) { put(t, ws, p, c) } }
	mkdir := func(p string) edit {
		return func(t *testing.T, ws *Workspace) {
			if _, err := ws.Mkdir(ctx, RootIno, p, Attr{Mode: 0o755}); err != nil {
				t.Fatal(err)
			}
		}
	}
	chmod := func(p string, mode uint32) edit {
		return func(t *testing.T, ws *Workspace) {
			_, _, ino, _ := resolve(ctx, ws, p)
			if _, err := ws.SetAttr(ctx, ino, SetAttr{Mode: &mode}); err != nil {
				t.Fatal(err)
			}
		}
	}
	text := lines(10, "base")
	cases := []struct {
		name         string
		ours, theirs edit
		path, kind   string
	}{
		{"same line", write("t.txt", strings.Replace(text, "line 3 base", "line 3 ours", 1)), write("t.txt", strings.Replace(text, "line 3 base", "line 3 theirs", 1)), "t.txt", ConflictBothModified},
		{"binary", write("bin", "\x00ours"), write("bin", "\x00theirs"), "bin", ConflictBothModified},
		{"modify/delete", write("t.txt", "changed"), rm("t.txt"), "t.txt", ConflictModifyDelete},
		{"delete/modify", rm("t.txt"), write("t.txt", "changed"), "t.txt", ConflictModifyDelete},
		{"add/add", write("new", "ours"), write("new", "theirs"), "new", ConflictAddAdd},
		{"file/directory", write("new", "ours"), mkdir("new"), "new", ConflictFileDir},
		{"mode", chmod("t.txt", 0o600), chmod("t.txt", 0o700), "t.txt", ConflictMode},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, ws := setup(t, map[string]string{"t.txt": text, "bin": "\x00base"}, "agent")
			c.ours(t, ws["main"])
			c.theirs(t, ws["agent"])
			before := dump(t, ws["main"])
			res, err := e.Merge(ctx, "agent", "main", MergeOptions{})
			if !errors.Is(err, ErrConflict) {
				t.Fatalf("merge: %v, want a conflict", err)
			}
			if len(res.Conflicts) != 1 || res.Conflicts[0].Path != c.path || res.Conflicts[0].Kind != c.kind {
				t.Fatalf("conflicts = %v, want %s at %s", res.Conflicts, c.kind, c.path)
			}
			if after := dump(t, ws["main"]); after != before {
				t.Fatalf("a failed merge changed the branch:\n%s\n---\n%s", before, after)
			}
			// ours keeps main's side, theirs takes the agent's.
			if _, err := e.Merge(ctx, "agent", "main", MergeOptions{Strategy: StrategyOurs, DryRun: true}); err != nil {
				t.Fatal(err)
			}
			if _, err := e.Merge(ctx, "agent", "main", MergeOptions{Strategy: StrategyTheirs}); err != nil {
				t.Fatal(err)
			}
			if got, want := dump(t, ws["main"]), dump(t, ws["agent"]); got != want {
				t.Fatalf("--strategy theirs: main differs from agent\ngot:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// Concurrent merges into one branch serialise: every source's change arrives, and each merge
// checkpoint has the previous one as its first parent.
func TestConcurrentMerges(t *testing.T) {
	ctx := context.Background()
	var agents []string
	files := map[string]string{}
	for i := 0; i < 8; i++ {
		agents = append(agents, fmt.Sprint("agent", i))
		files[fmt.Sprintf("f%d", i)] = "base"
	}
	e, ws := setup(t, files, agents...)
	for i, a := range agents {
		put(t, ws[a], fmt.Sprintf("f%d", i), "done by "+a)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(agents))
	for _, a := range agents {
		wg.Add(1)
		go func(a string) {
			defer wg.Done()
			_, err := e.Merge(ctx, a, "main", MergeOptions{})
			errs <- err
		}(a)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i, a := range agents {
		if got, _ := fileAt(t, ws["main"], fmt.Sprintf("f%d", i)); got != "done by "+a {
			t.Errorf("f%d = %q: a merge was lost", i, got)
		}
	}
	log, _ := e.Log(ctx, "main")
	merges := 0
	for _, l := range log {
		if len(l.Parents) == 2 {
			merges++
		}
	}
	if merges != len(agents) {
		t.Fatalf("%d merge checkpoints, want %d", merges, len(agents))
	}
}

// The model test: random edits on branches forked from one base, merged in random order,
// against a reference merge computed per file from the three plain versions.
func TestMergeModel(t *testing.T) {
	for seed := uint64(1); seed <= 30; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { mergeModel(t, seed) })
	}
}

type mfileState struct {
	path    string
	content string
	mode    uint32
}

func mergeModel(t *testing.T, seed uint64) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 3))
	base := map[int]mfileState{} // file identity -> state
	files := map[string]string{}
	for i := 0; i < 12; i++ {
		st := mfileState{path: fmt.Sprintf("d%d/f%d.txt", i%3, i), content: lines(12, fmt.Sprint("f", i)), mode: 0o644}
		base[i] = st
		files[st.path] = st.content
	}
	nb := 2 + rng.IntN(2)
	var names []string
	for i := 0; i < nb; i++ {
		names = append(names, fmt.Sprint("b", i))
	}
	e, ws := setup(t, files, names...)
	states := map[string]map[int]mfileState{}
	next := 100
	for bi, b := range names {
		st := map[int]mfileState{}
		for id, f := range base {
			st[id] = f
		}
		// Each branch edits its own files mostly; sometimes a shared one, in its own line.
		for k := 0; k < 3; k++ {
			id := rng.IntN(12)
			f, ok := st[id]
			if !ok {
				continue
			}
			switch rng.IntN(5) {
			case 0, 1: // edit one line; the line number depends on the branch
				ls := strings.SplitAfter(f.content, "\n")
				ln := (bi*4 + k) % 11
				ls[ln] = fmt.Sprintf("edited by %s %d\n", b, k)
				f.content = strings.Join(ls, "")
				put(t, ws[b], f.path, f.content)
				st[id] = f
			case 2: // delete
				parent, name, _, err := resolve(ctx, ws[b], f.path)
				if err != nil {
					t.Fatal(err)
				}
				ws[b].Unlink(ctx, parent, name)
				delete(st, id)
			case 3: // new file, unique name
				nf := mfileState{path: fmt.Sprintf("d%d/new-%s-%d", k%3, b, k), content: "new " + b, mode: 0o644}
				put(t, ws[b], nf.path, nf.content)
				st[next] = nf
				next++
			case 4: // chmod
				mode := uint32(0o600 + bi)
				_, _, ino, _ := resolve(ctx, ws[b], f.path)
				ws[b].SetAttr(ctx, ino, SetAttr{Mode: &mode})
				f.mode = mode
				st[id] = f
			}
		}
		states[b] = st
	}
	// Merge branches into main one after another; the reference merges the states.
	want := map[int]mfileState{}
	for id, f := range base {
		want[id] = f
	}
	wantBase := base
	for _, b := range names {
		merged, conflict := refMerge(wantBase, want, states[b])
		before := dump(t, ws["main"])
		_, err := e.Merge(ctx, b, "main", MergeOptions{})
		if conflict != "" {
			if !errors.Is(err, ErrConflict) {
				t.Fatalf("seed %d: merging %s: got %v, want a conflict at %s", seed, b, err, conflict)
			}
			if dump(t, ws["main"]) != before {
				t.Fatalf("seed %d: failed merge changed main", seed)
			}
			continue
		}
		if err != nil {
			t.Fatalf("seed %d: merging %s: %v", seed, b, err)
		}
		want = merged
		// Later merges are three-way against the original base still (each branch forked
		// from it), so wantBase stays.
	}
	// Compare main with the reference.
	var got, exp []string
	for _, f := range want {
		exp = append(exp, f.path+"="+f.content)
	}
	d := dump(t, ws["main"])
	_ = d
	for _, f := range want {
		c, ok := fileAt(t, ws["main"], f.path)
		if !ok {
			t.Fatalf("seed %d: %s missing after merges", seed, f.path)
		}
		got = append(got, f.path+"="+c)
	}
	sort.Strings(got)
	sort.Strings(exp)
	if strings.Join(got, "\n") != strings.Join(exp, "\n") {
		t.Fatalf("seed %d: merged content differs\ngot:\n%s\nwant:\n%s", seed, strings.Join(got, "\n"), strings.Join(exp, "\n"))
	}
}

// refMerge merges per file identity; it returns the merged state or the first conflict.
func refMerge(base, ours, theirs map[int]mfileState) (map[int]mfileState, string) {
	out := map[int]mfileState{}
	ids := map[int]bool{}
	for _, m := range []map[int]mfileState{base, ours, theirs} {
		for id := range m {
			ids[id] = true
		}
	}
	for id := range ids {
		o, inO := base[id]
		a, inA := ours[id]
		b, inB := theirs[id]
		switch {
		case !inO:
			if inA {
				out[id] = a
			}
			if inB {
				out[id] = b
			}
			continue
		case !inA && !inB:
			continue
		case !inA:
			if b != o {
				return nil, o.path
			}
			continue
		case !inB:
			if a != o {
				return nil, o.path
			}
			continue
		}
		m := a
		if a.mode != b.mode && a.mode != o.mode && b.mode != o.mode {
			return nil, o.path
		}
		if a.mode == o.mode {
			m.mode = b.mode
		}
		switch {
		case b.content == o.content || a.content == b.content:
		case a.content == o.content:
			m.content = b.content
		default:
			// Both edited: line-wise, the model only edits whole lines; merge if the
			// edited lines differ and are not adjacent.
			ol, al, bl := strings.SplitAfter(o.content, "\n"), strings.SplitAfter(a.content, "\n"), strings.SplitAfter(b.content, "\n")
			res := make([]string, len(ol))
			for i := range ol {
				ca, cb := al[i] != ol[i], bl[i] != ol[i]
				if ca && cb && al[i] != bl[i] {
					return nil, o.path
				}
				if (ca && i > 0 && bl[i-1] != ol[i-1] && !(al[i-1] != ol[i-1])) || (cb && i > 0 && al[i-1] != ol[i-1] && !(bl[i-1] != ol[i-1])) {
					return nil, o.path // adjacent changes conflict, as in git
				}
				res[i] = ol[i]
				if ca {
					res[i] = al[i]
				} else if cb {
					res[i] = bl[i]
				}
			}
			m.content = strings.Join(res, "")
		}
		out[id] = m
	}
	return out, ""
}

// replace writes a new file and renames it over p, as sed -i and many editors do.
func replace(t *testing.T, ws *Workspace, p, content string) {
	t.Helper()
	ctx := context.Background()
	parent, name, _, err := resolve(ctx, ws, p)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, ws, parent, name+".tmp", []byte(content))
	if err := ws.Rename(ctx, parent, name+".tmp", parent, name, 0); err != nil {
		t.Fatal(err)
	}
}

// A file edited in place on one side and replaced by rename on the other merges as two edits
// of one path.
func TestMergeReplacedFiles(t *testing.T) {
	ctx := context.Background()
	text := lines(10, "base")
	edit := func(line int, tag string) string {
		return strings.Replace(text, fmt.Sprintf("line %d base", line), fmt.Sprintf("line %d %s", line, tag), 1)
	}
	both := strings.Replace(edit(1, "main"), "line 8 base", "line 8 agent", 1)
	cases := []struct {
		name         string
		ours, theirs func(ws *Workspace, content string)
	}{
		{"in place vs replaced", func(ws *Workspace, c string) { put(t, ws, "f.txt", c) }, func(ws *Workspace, c string) { replace(t, ws, "f.txt", c) }},
		{"replaced vs in place", func(ws *Workspace, c string) { replace(t, ws, "f.txt", c) }, func(ws *Workspace, c string) { put(t, ws, "f.txt", c) }},
		{"both replaced", func(ws *Workspace, c string) { replace(t, ws, "f.txt", c) }, func(ws *Workspace, c string) { replace(t, ws, "f.txt", c) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, ws := setup(t, map[string]string{"f.txt": text}, "agent")
			c.ours(ws["main"], edit(1, "main"))
			c.theirs(ws["agent"], edit(8, "agent"))
			if res, err := e.Merge(ctx, "agent", "main", MergeOptions{}); err != nil {
				t.Fatalf("merge: %v %v", err, res.Conflicts)
			}
			if got, _ := fileAt(t, ws["main"], "f.txt"); got != both {
				t.Fatalf("f.txt =\n%s\nwant\n%s", got, both)
			}
			if d := dump(t, ws["main"]); strings.Count(d, "\n") != 1 {
				t.Fatalf("stray files after merge:\n%s", d)
			}
		})
		t.Run(c.name+" conflict", func(t *testing.T) {
			e, ws := setup(t, map[string]string{"f.txt": text}, "agent")
			c.ours(ws["main"], edit(4, "main"))
			c.theirs(ws["agent"], edit(4, "agent"))
			res, err := e.Merge(ctx, "agent", "main", MergeOptions{})
			if !errors.Is(err, ErrConflict) || len(res.Conflicts) != 1 || res.Conflicts[0].Path != "f.txt" {
				t.Fatalf("merge: %v %v, want one conflict at f.txt", err, res)
			}
			if _, err := e.Merge(ctx, "agent", "main", MergeOptions{Strategy: StrategyTheirs}); err != nil {
				t.Fatal(err)
			}
			if got, want := dump(t, ws["main"]), dump(t, ws["agent"]); got != want {
				t.Fatalf("theirs: got\n%s\nwant\n%s", got, want)
			}
		})
	}
}
