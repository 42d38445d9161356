package s3_test

import (
	"context"
	"testing"

	"github.com/agentfs/agentfs/backends"
	"github.com/agentfs/agentfs/backends/backendtest"
	"github.com/agentfs/agentfs/backends/fault"
)

func TestFaults(t *testing.T) {
	srv := setup(t, "agentfs")
	p, err := fault.Start(srv.Endpoint, fault.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	b, err := backends.Open(context.Background(), "s3://agentfs/faulty?region=us-east-1&path_style=true&retries=6&endpoint="+p.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	backendtest.RunFaults(t, b, p, backendtest.DefaultFaults)
}
