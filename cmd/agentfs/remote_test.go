package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/agentfs/agentfs/backends/backendtest"
)

// TestRemoteTwoHosts: two repositories, each with its own daemon, share one bucket through
// the CLI. Host A pushes main; host B clones it lazily, reads it through a FUSE mount, forks
// it, writes through the mount and pushes its branch; A pulls it. Then both push main at
// once: one wins, the other is rejected with one clear line, pulls (merging) and pushes.
func TestRemoteTwoHosts(t *testing.T) {
	t.Run("file", func(t *testing.T) { testTwoHosts(t, "file://"+t.TempDir()) })
	t.Run("s3", func(t *testing.T) {
		srv := backendtest.StartVersityGW(t)
		t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
		t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
		t.Setenv("AWS_REGION", "us-east-1")
		t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
		t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
		t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
		c := s3.New(s3.Options{
			Region: "us-east-1", BaseEndpoint: aws.String(srv.Endpoint), UsePathStyle: true,
			Credentials: credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
		})
		if _, err := c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String("shared")}); err != nil {
			t.Fatal(err)
		}
		testTwoHosts(t, "s3://shared/team/repo?region=us-east-1&path_style=true&endpoint="+srv.Endpoint)
	})
	// The daemons are child processes: the emulators' settings reach them through the
	// environment, as credentials would in production.
	t.Run("gcs", func(t *testing.T) {
		t.Setenv("STORAGE_EMULATOR_HOST", backendtest.StartFakeGCS(t, "shared"))
		testTwoHosts(t, "gs://shared/team/repo")
	})
	t.Run("azure", func(t *testing.T) {
		srv := backendtest.StartAzuriteContainers(t, "shared")
		testTwoHosts(t, fmt.Sprintf("az://%s/shared/team/repo?endpoint=%s", srv.Account, srv.Endpoint))
	})
}

func haveFUSE(t *testing.T) bool {
	if _, err := os.Stat("/dev/fuse"); err != nil || os.Geteuid() != 0 {
		if os.Getenv("AGENTFS_REQUIRE_FUSE") == "1" {
			t.Fatalf("/dev/fuse or root missing and AGENTFS_REQUIRE_FUSE=1")
		}
		t.Logf("no /dev/fuse or not root: checking through the CLI instead of a mount")
		return false
	}
	return true
}

func testTwoHosts(t *testing.T, url string) {
	// Source tree: small and multi-block files.
	rng := rand.New(rand.NewPCG(7, 7))
	src := map[string]string{"README": "shared project\n"}
	for i := 0; i < 12; i++ {
		b := make([]byte, rng.IntN(400<<10))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		src[fmt.Sprintf("data/part%02d.bin", i)] = string(b)
	}
	srcDir := writeTree(t, src)

	// Host A.
	repoA := newRepo(t)
	dA := startDaemon(t, repoA)
	defer dA.stop(t)
	ok(t, repoA, "import", "main", srcDir)
	ok(t, repoA, "remote", "add", "origin", url)
	if out := ok(t, repoA, "remote", "list"); !strings.Contains(out, "origin") {
		t.Fatalf("remote list:\n%s", out)
	}
	if out := ok(t, repoA, "push", "main"); !strings.Contains(out, "pushed main to origin") {
		t.Fatalf("push: %q", out)
	}

	// Host B: clone (no daemon yet), then serve and mount.
	repoB := filepath.Join(t.TempDir(), "repoB")
	if out := ok(t, repoB, "clone", url, "--branch", "main"); !strings.Contains(out, "cloned") {
		t.Fatalf("clone: %q", out)
	}
	dB := startDaemon(t, repoB)
	defer dB.stop(t)
	if haveFUSE(t) {
		mnt := t.TempDir()
		ok(t, repoB, "mount", "main", mnt, "--read-only")
		got := map[string]string{}
		filepath.Walk(mnt, func(p string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode().IsRegular() {
				data, err := os.ReadFile(p)
				if err != nil {
					t.Errorf("read %s through the mount: %v", p, err)
				}
				rel, _ := filepath.Rel(mnt, p)
				got[rel] = string(data)
			}
			return nil
		})
		ok(t, repoB, "unmount", mnt)
		if len(got) != len(src) {
			t.Errorf("mount of the lazy clone shows %d files, want %d", len(got), len(src))
		}
		for p, want := range src {
			if got[p] != want {
				t.Errorf("%s through the mount of the clone: %d bytes, want %d (equal: false)", p, len(got[p]), len(want))
			}
		}
		// Fork, write through a mount, push (push checkpoints the mount's changes).
		ok(t, repoB, "fork", "main", "feature")
		fmnt := t.TempDir()
		ok(t, repoB, "mount", "feature", fmnt)
		if err := os.WriteFile(filepath.Join(fmnt, "from-b.txt"), []byte("written on host B\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		ok(t, repoB, "push", "origin", "feature")
		ok(t, repoB, "unmount", fmnt)
	} else {
		for p, want := range src {
			if got := ok(t, repoB, "cat", "main:"+p); got != want {
				t.Errorf("cat %s on the clone: %d bytes, want %d", p, len(got), len(want))
			}
		}
		ok(t, repoB, "fork", "main", "feature")
		ok(t, repoB, "import", "feature", writeTree(t, mergeMaps(src, map[string]string{"from-b.txt": "written on host B\n"})))
		ok(t, repoB, "push", "origin", "feature")
	}

	// A pulls B's branch.
	if out := ok(t, repoA, "pull", "origin", "feature"); !strings.Contains(out, "created") {
		t.Fatalf("pull feature on A: %q", out)
	}
	if got := ok(t, repoA, "cat", "feature:from-b.txt"); got != "written on host B\n" {
		t.Fatalf("A reads B's file: %q", got)
	}

	// Both change main and push at once.
	ok(t, repoB, "import", "main", writeTree(t, mergeMaps(src, map[string]string{"b.txt": "B\n"})))
	ok(t, repoA, "import", "main", writeTree(t, mergeMaps(src, map[string]string{"a.txt": "A\n"})))
	var wg sync.WaitGroup
	results := make([]result, 2)
	for i, r := range []string{repoA, repoB} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = agentfs(t, r, "push", "main")
		}()
	}
	wg.Wait()
	winners := 0
	loser := ""
	for i, r := range results {
		switch r.code {
		case 0:
			winners++
		case 1:
			want := "agentfs: push rejected: remote branch main has changed since your last pull; run agentfs pull origin main first\n"
			if r.stderr != want {
				t.Errorf("rejected push said %q, want %q", r.stderr, want)
			}
			loser = []string{repoA, repoB}[i]
		default:
			t.Fatalf("push exit %d: %s", r.code, r.stderr)
		}
	}
	if winners != 1 || loser == "" {
		t.Fatalf("concurrent pushes: %d winners; results %+v", winners, results)
	}
	if out := ok(t, loser, "pull", "main"); !strings.Contains(out, "merged") {
		t.Fatalf("pull on the loser: %q", out)
	}
	ok(t, loser, "push", "main")
	for _, r := range []string{repoA, repoB} {
		ok(t, r, "pull", "main")
		if ok(t, r, "cat", "main:a.txt") != "A\n" || ok(t, r, "cat", "main:b.txt") != "B\n" {
			t.Fatalf("after the merge, main on %s lacks a.txt or b.txt", r)
		}
	}
	// Bad input: one clear line.
	if r := agentfs(t, repoA, "push", "nosuch", "main"); r.code != 1 || !strings.Contains(r.stderr, "remote not found") {
		t.Errorf("push to unknown remote: exit %d %q", r.code, r.stderr)
	}
	if r := agentfs(t, repoA, "clone", url); r.code != 1 || !strings.Contains(r.stderr, "already exists") {
		t.Errorf("clone into an existing repository: exit %d %q", r.code, r.stderr)
	}
}

func mergeMaps(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}
