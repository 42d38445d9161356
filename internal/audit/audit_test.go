package audit

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Appends from many goroutines (as from the daemon and the CLI at once) form one chain;
// editing, removing, inserting or reordering a line breaks it.
func TestChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 10; j++ {
				if err := Open(path).Append(Entry{Time: time.Now(), Who: "uid:0", What: "checkpoint", Branch: string(rune('a' + i)), Result: "ok"}); err != nil {
					t.Error(err)
				}
			}
		}(i)
	}
	wg.Wait()
	if n, err := Verify(path); err != nil || n != 80 {
		t.Fatalf("verify: %d %v", n, err)
	}
	if es, _ := Read(path, Filter{Branch: "c"}); len(es) != 10 {
		t.Fatalf("filter by branch: %d", len(es))
	}
	if es, _ := Read(path, Filter{Since: time.Now().Add(time.Hour)}); len(es) != 0 {
		t.Fatalf("filter by time: %d", len(es))
	}
	orig, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(orig), "\n")
	for name, text := range map[string]string{
		"edited":    strings.Replace(string(orig), `"branch":"c"`, `"branch":"z"`, 1),
		"removed":   strings.Join(append(append([]string{}, lines[:5]...), lines[6:]...), ""),
		"inserted":  strings.Join(append(append(append([]string{}, lines[:5]...), lines[3]), lines[5:]...), ""),
		"reordered": strings.Join(append(append(append([]string{}, lines[:5]...), lines[6], lines[5]), lines[7:]...), ""),
		"garbage":   string(orig) + "not json\n",
	} {
		os.WriteFile(path, []byte(text), 0o600)
		if _, err := Verify(path); !errors.Is(err, ErrBroken) {
			t.Errorf("%s: verify says %v", name, err)
		}
	}
	// Huge arguments are cut, so that lines stay bounded.
	os.WriteFile(path, orig, 0o600)
	big := []byte(`"` + strings.Repeat("x", 1<<20) + `"`)
	if err := Open(path).Append(Entry{What: "x", Args: big}); err != nil {
		t.Fatal(err)
	}
	if n, err := Verify(path); err != nil || n != 81 {
		t.Fatalf("after a big entry: %d %v", n, err)
	}
}
