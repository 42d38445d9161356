package gcs_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/agentfs/agentfs/backends"
	"github.com/agentfs/agentfs/backends/backendtest"
	_ "github.com/agentfs/agentfs/backends/gcs"
)

func TestConformance(t *testing.T) {
	t.Setenv("STORAGE_EMULATOR_HOST", backendtest.StartFakeGCS(t, "agentfs"))
	for _, u := range []string{"gs://agentfs/repo/one", "gs://agentfs"} {
		t.Run(strings.TrimPrefix(u, "gs://"), func(t *testing.T) {
			b, err := backends.Open(context.Background(), u)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			backendtest.Run(t, b)
		})
	}
}

func TestMissingBucket(t *testing.T) {
	t.Setenv("STORAGE_EMULATOR_HOST", backendtest.StartFakeGCS(t))
	_, err := backends.Open(context.Background(), "gs://no-such-bucket/x")
	if !errors.Is(err, backends.ErrNotExist) || !strings.Contains(err.Error(), `"no-such-bucket" does not exist`) {
		t.Fatalf("Open(missing bucket) = %v, want ErrNotExist naming the bucket", err)
	}
	t.Logf("missing bucket: %v", err)
}

func TestBadURL(t *testing.T) {
	for _, u := range []string{"gs:///prefix", "gs://b/p?region=x"} {
		if _, err := backends.Open(context.Background(), u); err == nil {
			t.Errorf("Open(%q) succeeded", u)
		}
	}
}
