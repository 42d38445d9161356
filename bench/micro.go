package bench

import (
	"fmt"
	"os"
	"path/filepath"
)

// Micro rows of issue 17 that the other files do not already measure.

// RunRmTree makes a tree of files files of 100 bytes (100 per directory) and times rm -rf of
// it.
func RunRmTree(dir string, files int) (Value, error) {
	sub := filepath.Join(dir, "tree")
	data := make([]byte, 100)
	for i := 0; i < files; i++ {
		p := filepath.Join(sub, fmt.Sprintf("d%03d", i/100), fmt.Sprintf("f%05d", i))
		if i%100 == 0 {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return Value{}, err
			}
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return Value{}, err
		}
	}
	quiesce()
	d, err := run(dir, "rm", "-rf", sub)
	if err != nil {
		return Value{}, err
	}
	return Value{Dur: d}, nil
}

func (s *suite) microRows() {
	n := s.cfg.MetaFiles
	s.fileRows("rmtree", func(dir string) ([]Value, error) {
		v, err := RunRmTree(dir, n)
		return []Value{v}, err
	}, []*Row{newRow("metadata", "rm -rf of a tree", fmt.Sprintf("%s files of 100 B in %d directories, just written", count(n), (n+99)/100), forIssue(17, ratioBelow(2, "time")))})
}
