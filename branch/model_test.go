package branch

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"path"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/agentfs/agentfs/store"
)

// The model: a plain in-memory tree. Hard links are two entries holding the same *mfile.
type mfile struct{ data []byte }
type mdir struct{ entries map[string]any } // *mdir or *mfile

func newMdir() *mdir { return &mdir{entries: map[string]any{}} }

func (d *mdir) clone(files map[*mfile]*mfile) *mdir {
	c := newMdir()
	for name, e := range d.entries {
		switch e := e.(type) {
		case *mdir:
			c.entries[name] = e.clone(files)
		case *mfile:
			if files[e] == nil {
				files[e] = &mfile{data: bytes.Clone(e.data)}
			}
			c.entries[name] = files[e]
		}
	}
	return c
}

// paths lists every path of the model (dirs end in "/").
func (d *mdir) walk(prefix string, fn func(p string, e any)) {
	for name, e := range d.entries {
		p := path.Join(prefix, name)
		fn(p, e)
		if sub, ok := e.(*mdir); ok {
			sub.walk(p, fn)
		}
	}
}

func (d *mdir) lookup(p string) (parent *mdir, name string, e any) {
	parts := strings.Split(p, "/")
	cur := d
	for _, part := range parts[:len(parts)-1] {
		next, ok := cur.entries[part].(*mdir)
		if !ok {
			return nil, "", nil
		}
		cur = next
	}
	name = parts[len(parts)-1]
	return cur, name, cur.entries[name]
}

// dump renders a workspace's visible tree, following the same order as mdump.
func dump(t *testing.T, ws *Workspace) string {
	t.Helper()
	ctx := context.Background()
	var sb strings.Builder
	var rec func(ino uint64, prefix string)
	rec = func(ino uint64, prefix string) {
		var ents []DirEntry
		if err := ws.ReadDir(ctx, ino, "", func(e DirEntry) error { ents = append(ents, e); return nil }); err != nil {
			t.Fatalf("readdir %s: %v", prefix, err)
		}
		for _, e := range ents {
			p := path.Join(prefix, e.Name)
			n, err := ws.GetAttr(ctx, e.Ino)
			if err != nil {
				t.Fatalf("getattr %s: %v", p, err)
			}
			if n.IsDir() {
				fmt.Fprintf(&sb, "%s/ nlink=%d\n", p, n.Nlink)
				rec(e.Ino, p)
				continue
			}
			buf := make([]byte, n.Size+10)
			k, err := ws.Read(ctx, e.Ino, 0, buf)
			if err != nil {
				t.Fatalf("read %s: %v", p, err)
			}
			fmt.Fprintf(&sb, "%s size=%d nlink=%d sum=%x\n", p, k, n.Nlink, store.Sum(buf[:k]))
		}
	}
	rec(RootIno, "")
	return sb.String()
}

func mdump(d *mdir) string {
	links := map[*mfile]int{}
	d.walk("", func(p string, e any) {
		if f, ok := e.(*mfile); ok {
			links[f]++
		}
	})
	var sb strings.Builder
	var rec func(d *mdir, prefix string)
	rec = func(d *mdir, prefix string) {
		names := make([]string, 0, len(d.entries))
		for n := range d.entries {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, name := range names {
			p := path.Join(prefix, name)
			switch e := d.entries[name].(type) {
			case *mdir:
				sub := 0
				for _, x := range e.entries {
					if _, ok := x.(*mdir); ok {
						sub++
					}
				}
				fmt.Fprintf(&sb, "%s/ nlink=%d\n", p, 2+sub)
				rec(e, p)
			case *mfile:
				fmt.Fprintf(&sb, "%s size=%d nlink=%d sum=%x\n", p, len(e.data), links[e], store.Sum(e.data))
			}
		}
	}
	rec(d, "")
	return sb.String()
}

// resolve walks a path in a workspace.
func resolve(ctx context.Context, ws *Workspace, p string) (parent uint64, name string, ino uint64, err error) {
	parent = RootIno
	parts := strings.Split(p, "/")
	for _, part := range parts[:len(parts)-1] {
		n, err := ws.Lookup(ctx, parent, part)
		if err != nil {
			return 0, "", 0, err
		}
		parent = n.Ino
	}
	name = parts[len(parts)-1]
	n, err := ws.Lookup(ctx, parent, name)
	if err != nil {
		return parent, name, 0, err
	}
	return parent, name, n.Ino, nil
}

type modelState struct {
	branches    map[string]*mdir
	checkpoints map[store.ID]*mdir
	cpOrder     []store.ID
}

func TestVersionModel(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { runModel(t, seed, 600) })
	}
}

func runModel(t *testing.T, seed uint64, steps int) {
	ctx := context.Background()
	e := openEngine(t)
	rng := rand.New(rand.NewPCG(seed, 99))
	m := &modelState{branches: map[string]*mdir{}, checkpoints: map[store.ID]*mdir{}}
	if _, err := e.CreateBranch(ctx, "main", ""); err != nil {
		t.Fatal(err)
	}
	m.branches["main"] = newMdir()
	names := []string{"a", "b", "c", "d", "long-file-name-" + strings.Repeat("x", 40)}
	randPath := func(d *mdir, wantDir bool) string {
		// Pick an existing directory, then a name in it.
		var dirs []string
		dirs = append(dirs, "")
		d.walk("", func(p string, e any) {
			if _, ok := e.(*mdir); ok {
				dirs = append(dirs, p)
			}
		})
		sort.Strings(dirs)
		return path.Join(dirs[rng.IntN(len(dirs))], names[rng.IntN(len(names))])
	}
	randData := func() []byte {
		sizes := []int{0, 1, 100, InlineMax, InlineMax + 1, BlockSize - 1, BlockSize, BlockSize + 7, 3*BlockSize + 11}
		b := make([]byte, sizes[rng.IntN(len(sizes))])
		for i := range b {
			b[i] = byte(rng.IntN(4)) // compressible, and zero runs make holes
		}
		return b
	}
	branchNames := func() []string {
		var out []string
		for b := range m.branches {
			out = append(out, b)
		}
		sort.Strings(out)
		return out
	}
	for step := 0; step < steps; step++ {
		bname := branchNames()[rng.IntN(len(m.branches))]
		ws, err := e.Workspace(ctx, bname)
		if err != nil {
			t.Fatal(err)
		}
		md := m.branches[bname]
		op := rng.IntN(100)
		desc := ""
		switch {
		case op < 20: // create or overwrite a file at an offset
			p := randPath(md, false)
			mp, name, me := md.lookup(p)
			data := randData()
			off := []int{0, 0, 5, BlockSize - 3, 2 * BlockSize}[rng.IntN(5)]
			desc = fmt.Sprintf("write %s off=%d len=%d", p, off, len(data))
			parent, _, ino, err := resolve(ctx, ws, p)
			if _, isDir := me.(*mdir); isDir || mp == nil {
				continue
			}
			if me == nil {
				n, cerr := ws.Create(ctx, parent, name, Attr{Mode: 0o644})
				if cerr != nil {
					t.Fatalf("step %d %s: create: %v", step, desc, cerr)
				}
				ino = n.Ino
				me = &mfile{}
				mp.entries[name] = me
			} else if err != nil {
				t.Fatalf("step %d %s: resolve: %v", step, desc, err)
			}
			if _, err := ws.Write(ctx, ino, int64(off), data); err != nil {
				t.Fatalf("step %d %s: %v", step, desc, err)
			}
			f := me.(*mfile)
			if need := off + len(data); need > len(f.data) {
				f.data = append(f.data, make([]byte, need-len(f.data))...)
			}
			copy(f.data[off:], data)
		case op < 28: // truncate
			p := randPath(md, false)
			_, _, me := md.lookup(p)
			f, ok := me.(*mfile)
			if !ok {
				continue
			}
			size := []int{0, 10, InlineMax, BlockSize + 5, 2 * BlockSize, len(f.data) / 2, len(f.data) + 70000}[rng.IntN(7)]
			desc = fmt.Sprintf("truncate %s %d", p, size)
			_, _, ino, err := resolve(ctx, ws, p)
			if err != nil {
				t.Fatalf("step %d %s: %v", step, desc, err)
			}
			s := uint64(size)
			if _, err := ws.SetAttr(ctx, ino, SetAttr{Size: &s}); err != nil {
				t.Fatalf("step %d %s: %v", step, desc, err)
			}
			if size < len(f.data) {
				f.data = f.data[:size]
			} else {
				f.data = append(f.data, make([]byte, size-len(f.data))...)
			}
		case op < 36: // mkdir
			p := randPath(md, true)
			mp, name, me := md.lookup(p)
			if mp == nil {
				continue
			}
			desc = "mkdir " + p
			parent, _, _, _ := resolve(ctx, ws, p)
			_, err := ws.Mkdir(ctx, parent, name, Attr{Mode: 0o755})
			if me != nil {
				if err != syscall.EEXIST {
					t.Fatalf("step %d %s: got %v, want EEXIST", step, desc, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("step %d %s: %v", step, desc, err)
			}
			mp.entries[name] = newMdir()
		case op < 46: // unlink or rmdir
			p := randPath(md, false)
			mp, name, me := md.lookup(p)
			if me == nil {
				continue
			}
			parent, _, _, err := resolve(ctx, ws, p)
			if err != nil {
				t.Fatal(err)
			}
			if d, ok := me.(*mdir); ok {
				desc = "rmdir " + p
				err := ws.Rmdir(ctx, parent, name)
				if len(d.entries) > 0 {
					if err != syscall.ENOTEMPTY {
						t.Fatalf("step %d %s: got %v, want ENOTEMPTY", step, desc, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("step %d %s: %v", step, desc, err)
				}
			} else {
				desc = "unlink " + p
				if err := ws.Unlink(ctx, parent, name); err != nil {
					t.Fatalf("step %d %s: %v", step, desc, err)
				}
			}
			delete(mp.entries, name)
		case op < 56: // rename
			from, to := randPath(md, false), randPath(md, false)
			fp, fname, fe := md.lookup(from)
			tp, tname, te := md.lookup(to)
			if fe == nil || tp == nil || from == to {
				continue
			}
			desc = fmt.Sprintf("rename %s %s", from, to)
			if _, ok := fe.(*mdir); ok && (to == from || strings.HasPrefix(to, from+"/")) {
				continue // moving a directory into itself: EINVAL, checked elsewhere
			}
			fparent, _, _, _ := resolve(ctx, ws, from)
			tparent, _, _, _ := resolve(ctx, ws, to)
			err := ws.Rename(ctx, fparent, fname, tparent, tname, 0)
			_, fdir := fe.(*mdir)
			td, tdir := te.(*mdir)
			switch {
			case te != nil && fdir && !tdir:
				if err != syscall.ENOTDIR {
					t.Fatalf("step %d %s: got %v, want ENOTDIR", step, desc, err)
				}
				continue
			case te != nil && !fdir && tdir:
				if err != syscall.EISDIR {
					t.Fatalf("step %d %s: got %v, want EISDIR", step, desc, err)
				}
				continue
			case tdir && len(td.entries) > 0:
				if err != syscall.ENOTEMPTY {
					t.Fatalf("step %d %s: got %v, want ENOTEMPTY", step, desc, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("step %d %s: %v", step, desc, err)
			}
			if te != fe { // renaming a link onto another link of the same file does nothing
				delete(fp.entries, fname)
				tp.entries[tname] = fe
			}
		case op < 62: // hard link
			from, to := randPath(md, false), randPath(md, false)
			_, _, fe := md.lookup(from)
			tp, tname, te := md.lookup(to)
			f, ok := fe.(*mfile)
			if !ok || tp == nil {
				continue
			}
			desc = fmt.Sprintf("link %s %s", from, to)
			_, _, ino, _ := resolve(ctx, ws, from)
			tparent, _, _, _ := resolve(ctx, ws, to)
			_, err := ws.Link(ctx, ino, tparent, tname)
			if te != nil {
				if err != syscall.EEXIST {
					t.Fatalf("step %d %s: got %v, want EEXIST", step, desc, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("step %d %s: %v", step, desc, err)
			}
			tp.entries[tname] = f
		case op < 72: // checkpoint
			desc = "checkpoint " + bname
			id, err := e.Checkpoint(ctx, bname, "", "")
			if err != nil {
				t.Fatalf("step %d %s: %v", step, desc, err)
			}
			m.checkpoints[id] = md.clone(map[*mfile]*mfile{})
			m.cpOrder = append(m.cpOrder, id)
		case op < 80: // rollback to a checkpoint of any branch
			if len(m.cpOrder) == 0 {
				continue
			}
			id := m.cpOrder[rng.IntN(len(m.cpOrder))]
			desc = fmt.Sprintf("rollback %s %s", bname, id)
			if err := e.Rollback(ctx, bname, id.String()); err != nil {
				t.Fatalf("step %d %s: %v", step, desc, err)
			}
			m.branches[bname] = m.checkpoints[id].clone(map[*mfile]*mfile{})
		case op < 88: // fork the branch's live state, or a checkpoint
			if len(m.branches) >= 4 {
				continue
			}
			name := fmt.Sprintf("b%d", step)
			desc = fmt.Sprintf("fork %s %s", bname, name)
			if _, err := e.CreateBranch(ctx, name, bname); err != nil {
				t.Fatalf("step %d %s: %v", step, desc, err)
			}
			m.branches[name] = md.clone(map[*mfile]*mfile{})
		case op < 92: // delete a branch
			if bname == "main" {
				continue
			}
			desc = "delete " + bname
			if err := e.DeleteBranch(ctx, bname); err != nil {
				t.Fatalf("step %d %s: %v", step, desc, err)
			}
			delete(m.branches, bname)
			continue
		default: // fsync everything, or reopen the engine (state must survive a restart)
			desc = "reopen"
			if rng.IntN(2) == 0 {
				if err := e.Flush(ctx); err != nil {
					t.Fatal(err)
				}
				continue
			}
			e = reopenEngine(t, e)
		}
		ws, err = e.Workspace(ctx, bname)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := dump(t, ws), mdump(m.branches[bname]); got != want {
			t.Fatalf("seed %d step %d after %s: branch %s differs\ngot:\n%s\nwant:\n%s", seed, step, desc, bname, got, want)
		}
	}
	// Every branch and every checkpoint reads back as the model says.
	for name, md := range m.branches {
		ws, err := e.Workspace(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := dump(t, ws), mdump(md); got != want {
			t.Fatalf("final: branch %s differs\ngot:\n%s\nwant:\n%s", name, got, want)
		}
	}
	for id, md := range m.checkpoints {
		v, err := e.View(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := dump(t, v), mdump(md); got != want {
			t.Fatalf("final: checkpoint %s differs\ngot:\n%s\nwant:\n%s", id, got, want)
		}
	}
}
