package gcs_test

import (
	"context"
	"strings"
	"testing"

	"github.com/agentfs/agentfs/backends"
	"github.com/agentfs/agentfs/backends/backendtest"
	"github.com/agentfs/agentfs/backends/fault"
)

func TestFaults(t *testing.T) {
	host := backendtest.StartFakeGCS(t, "agentfs")
	p, err := fault.Start("http://"+host, fault.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	t.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(p.URL, "http://"))
	b, err := backends.Open(context.Background(), "gs://agentfs/faulty?retries=6")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	backendtest.RunFaults(t, b, p, backendtest.DefaultFaults)
}
