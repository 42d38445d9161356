package remote_test

import (
	"testing"
	"time"

	"github.com/agentfs/agentfs/backends/backendtest"
	"github.com/agentfs/agentfs/backends/fault"
	"github.com/agentfs/agentfs/internal/repo"
	"github.com/agentfs/agentfs/remote"
)

// TestFaultsS3: with a fault-injecting proxy in front of S3, push, clone, pull and lazy reads
// either complete or fail with an error; whatever was acknowledged reads back intact.
func TestFaultsS3(t *testing.T) {
	srv := startS3(t)
	p, err := fault.Start(srv.Endpoint, fault.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	url := s3URL(t, srv, p.URL, "faulty") + "&retries=6"
	cleanURL := "s3://faulty/repo?region=us-east-1&path_style=true&endpoint=" + srv.Endpoint

	cfg := backendtest.DefaultFaults
	cfg.DelayFor = 20 * time.Millisecond
	small := remote.Options{PackSize: 256 << 10} // many packs: many requests to break
	a := newRepo(t, small)
	if _, err := a.Remotes.Add(ctx, "origin", url); err != nil {
		t.Fatal(err)
	}
	p.SetConfig(cfg)
	var acked files
	for round := 0; round < 4; round++ {
		want := randomFiles(uint64(10+round), 20, 200<<10)
		writeBranch(t, a, "main", want)
		var err error
		for try := 0; try < 5; try++ {
			if _, err = a.Remotes.Push(ctx, "origin", "main"); err == nil {
				break
			}
			t.Logf("round %d push try %d failed (allowed): %v", round, try, err)
		}
		if err == nil {
			acked = want
		}
	}
	if acked == nil {
		t.Fatalf("no push got through %s", p.Stats())
	}
	// Clone and read under faults: every read is the acknowledged content or an error.
	var b *repo.Repo
	for try := 0; try < 5 && b == nil; try++ {
		r := newRepo(t)
		if _, err := r.Remotes.Clone(ctx, url, []string{"main"}, remote.PullOptions{}); err != nil {
			t.Logf("clone try %d failed (allowed): %v", try, err)
			continue
		}
		b = r
	}
	if b == nil {
		t.Fatalf("no clone got through: %s", p.Stats())
	}
	for try := 0; ; try++ {
		got, err := tryReadBranch(b, "main", t.TempDir())
		if err == nil {
			sameFiles(t, "lazy read under faults", got, acked)
			break
		}
		t.Logf("lazy read try %d failed (allowed): %v", try, err)
		if try == 10 {
			t.Fatalf("lazy reads never completed")
		}
	}
	t.Logf("proxy: %s", p.Stats())
	// Without faults, a fresh clone has exactly the last acknowledged push.
	p.SetConfig(fault.Config{})
	c, _ := cloneRepo(t, cleanURL, []string{"main"})
	sameFiles(t, "clean clone after faults", readBranch(t, c, "main"), acked)
}
