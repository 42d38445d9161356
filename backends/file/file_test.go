package file_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentfs/agentfs/backends"
	"github.com/agentfs/agentfs/backends/backendtest"
	_ "github.com/agentfs/agentfs/backends/file"
)

func TestConformance(t *testing.T) {
	dir := t.TempDir()
	b, err := backends.Open(context.Background(), "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	backendtest.Run(t, b)
	// No temp files are left behind.
	_ = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && strings.Contains(fi.Name(), ".agentfs-tmp") {
			t.Errorf("temp file left behind: %s", p)
		}
		return nil
	})
}

func TestBadURL(t *testing.T) {
	for _, u := range []string{"file://host/x", "file://relative", "file:///x?foo=1"} {
		if _, err := backends.Open(context.Background(), u); err == nil {
			t.Errorf("Open(%q) succeeded", u)
		}
	}
}

// A Delete tidies empty directories while a Put to the same directory runs: the Put must
// not fail because its directory vanished between making it and creating its temporary
// file (the soak test's remote gc failed to take its lock that way).
func TestPutWhileDeleteTidiesDirectory(t *testing.T) {
	ctx := context.Background()
	b, err := backends.Open(ctx, "file://"+t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 2000; i++ {
			b.Put(ctx, "locks/other", strings.NewReader("x"), 1)
			b.Delete(ctx, "locks/other")
		}
	}()
	for i := 0; i < 2000; i++ {
		if err := b.Put(ctx, "locks/gc", strings.NewReader("y"), 1); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
		if err := b.Delete(ctx, "locks/gc"); err != nil {
			t.Fatalf("delete %d: %v", i, err)
		}
	}
	<-done
}
