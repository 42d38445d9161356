package branch

import (
	"context"
	"testing"

	"github.com/agentfs/agentfs/store"
)

var storeDirs = map[*Engine]string{}

func openEngineAt(t testing.TB, dir string) *Engine {
	t.Helper()
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := Open(st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	storeDirs[e] = dir
	t.Cleanup(func() {
		if storeDirs[e] != "" {
			st.Close()
		}
	})
	return e
}

func openEngine(t testing.TB) *Engine { return openEngineAt(t, t.TempDir()) }

// reopenEngine shuts e down cleanly and opens the repository again.
func reopenEngine(t testing.TB, e *Engine) *Engine {
	t.Helper()
	if err := e.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := e.Store().Close(); err != nil {
		t.Fatal(err)
	}
	dir := storeDirs[e]
	storeDirs[e] = ""
	return openEngineAt(t, dir)
}
