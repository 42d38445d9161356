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
