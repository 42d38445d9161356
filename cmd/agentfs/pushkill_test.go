package main

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/agentfs/agentfs/backends"
	_ "github.com/agentfs/agentfs/backends/all"
	"github.com/agentfs/agentfs/backends/backendtest"
)

// s3Remote starts versitygw, creates a bucket and returns a remote URL in it; the
// credentials reach the CLI processes through the environment.
func s3Remote(t *testing.T, bucket string) string {
	t.Helper()
	url, env := s3Bucket(t, bucket)
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	return url
}

// s3Bucket is s3Remote for tests that cannot set this process's environment (parallel
// ones): it returns the variables that the CLI processes need.
func s3Bucket(t *testing.T, bucket string) (string, []string) {
	t.Helper()
	srv := backendtest.StartVersityGW(t)
	env := []string{"AWS_ACCESS_KEY_ID=" + srv.AccessKey, "AWS_SECRET_ACCESS_KEY=" + srv.SecretKey,
		"AWS_REGION=us-east-1", "AWS_CONFIG_FILE=/nonexistent", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent",
		"AWS_EC2_METADATA_DISABLED=true"}
	c := s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(srv.Endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
	})
	if _, err := c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	return "s3://" + bucket + "/team/repo?region=us-east-1&path_style=true&endpoint=" + srv.Endpoint, env
}

// randomTree writes about mib MiB of incompressible files (sizes from 1 KiB to 1.5 MiB).
func randomTree(t *testing.T, seed uint64, mib int) string {
	t.Helper()
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(seed, seed))
	total := int64(mib) << 20
	for i := 0; total > 0; i++ {
		n := min(total, int64(1<<10+rng.IntN(3<<19)))
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		p := filepath.Join(dir, fmt.Sprintf("d%02d", i%7), fmt.Sprintf("f%04d.bin", i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		total -= n
	}
	return dir
}

// sameTree fails unless dirs a and b hold the same regular files with the same bytes.
func sameTree(t *testing.T, a, b string) {
	t.Helper()
	files := func(root string) map[string][]byte {
		out := map[string][]byte{}
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			if d.Type().IsRegular() {
				data, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				rel, _ := filepath.Rel(root, p)
				out[rel] = data
			}
			return nil
		})
		return out
	}
	fa, fb := files(a), files(b)
	if len(fa) != len(fb) {
		t.Fatalf("%s has %d files, %s has %d", a, len(fa), b, len(fb))
	}
	for name, data := range fa {
		if !bytes.Equal(data, fb[name]) {
			t.Fatalf("%s differs between %s and %s", name, a, b)
		}
	}
}

// TestPushKilled: a push SIGKILLed midway leaves a remote that fsck --remote reports as
// incomplete, naming the interrupted push; the next push finishes it; a full clone of the
// result exports exactly the imported tree. AGENTFS_PUSH_CRASH_MB sets the tree's size
// (default 8; the figure is 200).
func TestPushKilled(t *testing.T) {
	mib := 8
	if s := os.Getenv("AGENTFS_PUSH_CRASH_MB"); s != "" {
		mib, _ = strconv.Atoi(s)
	}
	src := randomTree(t, 11, mib)
	t.Run("file", func(t *testing.T) { testPushKilled(t, "file://"+t.TempDir(), src) })
	t.Run("s3", func(t *testing.T) { testPushKilled(t, s3Remote(t, "killed"), src) })
}

func testPushKilled(t *testing.T, url, src string) {
	repo := newRepo(t)
	ok(t, repo, "import", "main", src)
	ok(t, repo, "remote", "add", "origin", url)

	b, err := backends.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	packs := func() int {
		n := 0
		b.List(context.Background(), "packs/", func(backends.ObjectInfo) error { n++; return nil })
		return n
	}

	// Small packs, so that the push is many uploads long; kill it once the first landed.
	cmd := exec.Command(agentfsBin, "--repo", repo, "push", "origin", "main")
	cmd.Env = append(os.Environ(), "AGENTFS_PACK_SIZE="+strconv.Itoa(256<<10))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	killed := false
	for !killed {
		select {
		case err := <-done:
			t.Fatalf("the push ended (%v) before the bucket held a pack:\n%s", err, out.String())
		case <-time.After(5 * time.Millisecond):
		}
		if packs() > 0 {
			cmd.Process.Kill()
			killed = true
		}
	}
	<-done
	t.Logf("push SIGKILLed after %v with %d packs in the bucket", time.Since(start).Round(time.Millisecond), packs())

	// The remote is incomplete and fsck --remote says so, naming the push.
	r := agentfs(t, repo, "fsck", "--remote")
	if r.code != 1 || !strings.Contains(r.stdout, "interrupted push of branch main") {
		t.Fatalf("fsck --remote after a killed push: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("fsck --remote: %s", lastLines(r.stdout, 2))

	// Push again: it finishes; the remote is then complete.
	ok(t, repo, "push", "origin", "main")
	r = agentfs(t, repo, "fsck", "--remote", "--verify-data")
	if r.code != 0 {
		t.Fatalf("fsck --remote --verify-data after the second push: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// A full clone elsewhere exports the tree.
	clone := filepath.Join(t.TempDir(), "clone")
	ok(t, clone, "clone", url, "--full")
	exported := filepath.Join(t.TempDir(), "out")
	ok(t, clone, "export", "main", exported)
	sameTree(t, src, exported)
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}
