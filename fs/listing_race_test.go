package fs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"unsafe"
)

// TestListingInterleaved: a process in the middle of a listing keeps seeing every entry that
// exists throughout, exactly once, when another process changes the directory and lists it
// from the start in between (ext4 guarantees it; the kernel does not open directories on the
// mount, opendir.go, so the daemon cannot tell the two streams apart). Run on the mount and
// on a plain directory; what differs is reported per scenario.
func TestListingInterleaved(t *testing.T) {
	_, m := mountMain(t)
	scenarios := []struct {
		name   string
		change func(t *testing.T, d string) // run between the reader's first and second batch
	}{
		{"unlink of an entry already read", func(t *testing.T, d string) {
			must(t, os.Remove(filepath.Join(d, listName(0))))
		}},
		{"create of an entry before the reader's position", func(t *testing.T, d string) {
			must(t, os.WriteFile(filepath.Join(d, "a-new"), nil, 0o644))
		}},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			for _, root := range []string{m.Dir(), t.TempDir()} {
				d, err := os.MkdirTemp(root, "list")
				must(t, err)
				const n = 600 // several READDIR replies
				for i := range n {
					must(t, os.WriteFile(filepath.Join(d, listName(i)), nil, 0o644))
				}
				fd, err := syscall.Open(d, syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
				must(t, err)
				seen := map[string]int{}
				buf := make([]byte, 1024) // a few entries per getdents
				got := getdentsNames(t, fd, buf)
				for _, s := range got {
					seen[s]++
				}
				sc.change(t, d)
				dirNames(t, d) // another process lists from the start
				for {
					got := getdentsNames(t, fd, buf)
					if got == nil {
						break
					}
					for _, s := range got {
						seen[s]++
					}
				}
				syscall.Close(fd)
				var bad []string
				for i := 1; i < n; i++ { // listName(0) may go in a scenario
					if c := seen[listName(i)]; c != 1 {
						bad = append(bad, fmt.Sprintf("%s seen %d times", listName(i), c))
					}
				}
				if len(bad) > 0 {
					where := "mount"
					if root != m.Dir() {
						where = "plain directory"
					}
					t.Errorf("%s: %d entries that existed throughout were not listed exactly once: %q", where, len(bad), bad[:min(5, len(bad))])
				}
			}
		})
	}
}

func listName(i int) string { return fmt.Sprintf("entry-with-a-longer-name-%04d", i) }

// getdentsNames reads one getdents64 batch into buf and returns its names but "." and ".."
// (nil at the end of the directory).
func getdentsNames(t *testing.T, fd int, buf []byte) []string {
	t.Helper()
	n, err := syscall.Getdents(fd, buf)
	if err != nil {
		t.Fatalf("getdents: %v", err)
	}
	if n == 0 {
		return nil
	}
	names := []string{}
	for off := 0; off < n; {
		reclen := int(*(*uint16)(unsafe.Pointer(&buf[off+16])))
		nm := buf[off+19 : off+reclen]
		nm = nm[:bytes.IndexByte(nm, 0)]
		if s := string(nm); s != "." && s != ".." {
			names = append(names, s)
		}
		off += reclen
	}
	return names
}
