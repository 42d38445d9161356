package transfer

import (
	"context"
	"io/fs"
	"path/filepath"
	"syscall"

	"github.com/agentfs/agentfs/branch"
)

// Progress is a report of an import or export in progress. Phase "scan" counts the files
// found so far (Total 0); then phase "import" or "export" counts Done of Total bytes of
// file content (unchanged files count as done when they are skipped).
type Progress struct {
	Phase       string
	Done, Total int64
}

// Phases of Progress.
const (
	PhaseScan   = "scan"
	PhaseImport = "import"
	PhaseExport = "export"
)

// meter counts bytes towards a total found by a scan before the copy; without a callback
// it does nothing, and no scan is made.
type meter struct {
	f           func(Progress)
	phase       string
	done, total int64
}

func (m *meter) add(n int64) {
	if m.f == nil {
		return
	}
	m.done += n
	m.f(Progress{Phase: m.phase, Done: m.done, Total: m.total})
}

// scanDir sums the sizes of the regular files under dir (a hard-linked file once).
func (m *meter) scanDir(dir string) {
	if m.f == nil {
		return
	}
	var files int64
	seen := map[[2]uint64]bool{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil // the copy reports what it cannot read
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Nlink > 1 {
			key := [2]uint64{uint64(st.Dev), st.Ino}
			if seen[key] {
				return nil
			}
			seen[key] = true
		}
		files++
		m.total += fi.Size()
		m.f(Progress{Phase: PhaseScan, Done: files})
		return nil
	})
	m.add(0)
}

// scanTree sums the sizes of the regular files of ws's tree (a hard-linked file once). A
// tree it cannot read, or with a loop, is left to the export to report: the total is then
// unknown.
func (m *meter) scanTree(ctx context.Context, ws *branch.Workspace) {
	if m.f == nil {
		return
	}
	var files int64
	seen := map[uint64]bool{branch.RootIno: true}
	var walk func(ino uint64) bool
	walk = func(ino uint64) bool {
		var entries []branch.DirEntry
		if ws.ReadDir(ctx, ino, "", func(e branch.DirEntry) error { entries = append(entries, e); return nil }) != nil {
			return false
		}
		for _, e := range entries {
			if seen[e.Ino] {
				if e.Mode&syscall.S_IFMT == syscall.S_IFDIR {
					return false // a loop: the export says so
				}
				continue // another name of a file already counted
			}
			seen[e.Ino] = true
			switch e.Mode & syscall.S_IFMT {
			case syscall.S_IFDIR:
				if !walk(e.Ino) {
					return false
				}
			case syscall.S_IFREG:
				n, err := ws.GetAttr(ctx, e.Ino)
				if err != nil {
					return false
				}
				files++
				m.total += int64(n.Size)
				m.f(Progress{Phase: PhaseScan, Done: files})
			}
		}
		return true
	}
	if !walk(branch.RootIno) {
		m.total = 0
	}
	m.add(0)
}
