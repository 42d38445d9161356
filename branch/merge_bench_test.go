package branch

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkMergeTreeSize merges two branches that each changed one file, in trees of 1k and
// 100k files: the cost follows the changes, not the tree, so the times should be close.
//
//	go test -run XXX -bench MergeTreeSize -benchtime 20x ./branch/
func BenchmarkMergeTreeSize(b *testing.B) {
	for _, files := range []int{1000, 100000} {
		b.Run(fmt.Sprint(files), func(b *testing.B) {
			ctx := context.Background()
			e := openEngine(b)
			e.CreateBranch(ctx, "main", "")
			ws, _ := e.Workspace(ctx, "main")
			dirs := make([]uint64, 100)
			for d := range dirs {
				n, err := ws.Mkdir(ctx, RootIno, fmt.Sprint("d", d), Attr{Mode: 0o755})
				if err != nil {
					b.Fatal(err)
				}
				dirs[d] = n.Ino
			}
			for i := 0; i < files; i++ {
				n, err := ws.Create(ctx, dirs[i%100], fmt.Sprintf("file-%06d.go", i), Attr{Mode: 0o644})
				if err != nil {
					b.Fatal(err)
				}
				ws.Write(ctx, n.Ino, 0, []byte(fmt.Sprintf("package p // %d\n", i)))
			}
			if _, err := e.Checkpoint(ctx, "main", "base", ""); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				for k, s := range []string{"x", "y"} {
					name := fmt.Sprintf("%s%d", s, i)
					e.CreateBranch(ctx, name, "main")
					w, _ := e.Workspace(ctx, name)
					f := (i*2 + k) * 37 % files // file f lives in directory f%100
					n, err := w.Lookup(ctx, dirs[f%100], fmt.Sprintf("file-%06d.go", f))
					if err != nil {
						b.Fatal(err)
					}
					w.Write(ctx, n.Ino, 0, []byte("// changed by "+name+"\n"))
					e.Checkpoint(ctx, name, "", "")
				}
				b.StartTimer()
				if _, err := e.Merge(ctx, fmt.Sprint("x", i), "main", MergeOptions{}); err != nil {
					b.Fatal(err)
				}
				if res, err := e.Merge(ctx, fmt.Sprint("y", i), "main", MergeOptions{}); err != nil {
					b.Fatal(err, res.Conflicts)
				}
			}
		})
	}
}
