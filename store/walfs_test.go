package store

import (
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestEverySyncedCommitIsDurable: walFS skips the WAL fsync of a pebble.Sync commit unless
// it runs inside Store.Durable, so a pebble.Sync anywhere else in the module is a commit that
// would silently not survive a power cut. (Store.CommitWritten is the one place that means
// it.)
func TestEverySyncedCommitIsDurable(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	var bad []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) {
			if d != nil && d.IsDir() && p != root {
				return filepath.SkipDir
			}
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") || strings.HasSuffix(p, "walfs.go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "pebble.Sync") && !strings.Contains(line, "Durable(") && !strings.HasPrefix(strings.TrimSpace(line), "//") {
				rel, _ := filepath.Rel(root, p)
				bad = append(bad, rel+":"+strconv.Itoa(i+1)+": "+strings.TrimSpace(line))
			}
		}
		return nil
	})
	if len(bad) > 0 {
		t.Fatalf("pebble.Sync outside Store.Durable (use Store.CommitDurable or wrap it in Store.Durable):\n%s", strings.Join(bad, "\n"))
	}
}
