package remote_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	_ "github.com/agentfs/agentfs/backends/all"
	"github.com/agentfs/agentfs/backends/backendtest"
	"github.com/agentfs/agentfs/internal/repo"
	"github.com/agentfs/agentfs/internal/transfer"
	"github.com/agentfs/agentfs/remote"
)

var ctx = context.Background()

// provider starts a server (if any) and returns a fresh, empty bucket URL for each call.
type provider struct {
	name  string
	start func(t *testing.T) func(t *testing.T) string
}

var providers = []provider{
	{"file", func(t *testing.T) func(t *testing.T) string {
		return func(t *testing.T) string { return "file://" + t.TempDir() }
	}},
	{"s3", func(t *testing.T) func(t *testing.T) string {
		srv := startS3(t)
		n := 0
		return func(t *testing.T) string {
			n++
			return s3URL(t, srv, srv.Endpoint, fmt.Sprintf("bucket%d", n))
		}
	}},
	{"gcs", func(t *testing.T) func(t *testing.T) string {
		t.Setenv("STORAGE_EMULATOR_HOST", backendtest.StartFakeGCS(t, "agentfs"))
		n := 0
		return func(t *testing.T) string {
			n++
			return fmt.Sprintf("gs://agentfs/repo%d", n)
		}
	}},
	{"azure", func(t *testing.T) func(t *testing.T) string {
		srv := backendtest.StartAzuriteContainers(t, "agentfs")
		n := 0
		return func(t *testing.T) string {
			n++
			return fmt.Sprintf("az://%s/agentfs/repo%d?endpoint=%s", srv.Account, n, srv.Endpoint)
		}
	}},
}

func startS3(t *testing.T) *backendtest.S3Server {
	srv := backendtest.StartVersityGW(t)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	return srv
}

// s3URL creates bucket and returns its URL through endpoint (the server, or a proxy to it).
func s3URL(t *testing.T, srv *backendtest.S3Server, endpoint, bucket string) string {
	c := s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(srv.Endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
	})
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("CreateBucket: %v", err)
	}
	return "s3://" + bucket + "/repo?region=us-east-1&path_style=true&endpoint=" + endpoint
}

// newRepo creates a repository with an empty main; it is closed when the test ends.
func newRepo(t *testing.T, o ...remote.Options) *repo.Repo {
	t.Helper()
	r, err := repo.Init(ctx, filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	if len(o) > 0 {
		r.Remotes.Close()
		r.Remotes = remote.New(r.Engine, o[0])
	}
	return r
}

// cloneRepo clones url lazily into a new repository.
func cloneRepo(t *testing.T, url string, branches []string, o ...remote.Options) (*repo.Repo, remote.CloneResult) {
	t.Helper()
	r := newRepo(t, o...)
	res, err := r.Remotes.Clone(ctx, url, branches, remote.PullOptions{})
	if err != nil {
		t.Fatalf("clone %s: %v", url, err)
	}
	return r, res
}

// files is a tree's content by slash path ("dir/" entries are directories).
type files map[string][]byte

func randomFiles(seed uint64, n int, maxSize int) files {
	rng := rand.New(rand.NewPCG(seed, seed))
	out := files{}
	for i := 0; i < n; i++ {
		size := rng.IntN(maxSize + 1)
		if i%5 == 0 {
			size = rng.IntN(3000) // inline-sized
		}
		data := make([]byte, size)
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		out[fmt.Sprintf("d%d/sub%d/f%03d.bin", i%4, i%3, i)] = data
	}
	return out
}

// writeBranch makes branch br hold exactly fs (importing a directory) and checkpoints it.
func writeBranch(t *testing.T, r *repo.Repo, br string, fs files) {
	t.Helper()
	dir := t.TempDir()
	for p, data := range fs {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Engine.GetBranch(br); err != nil {
		if _, err := r.Engine.CreateBranch(ctx, br, ""); err != nil {
			t.Fatal(err)
		}
	}
	ws, err := r.Engine.Workspace(ctx, br)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := transfer.Import(ctx, ws, dir); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Engine.Checkpoint(ctx, br, "", "write"); err != nil {
		t.Fatal(err)
	}
}

// readBranch exports ref and returns its files.
func readBranch(t *testing.T, r *repo.Repo, ref string) files {
	t.Helper()
	got, err := tryReadBranch(r, ref, t.TempDir())
	if err != nil {
		t.Fatalf("export %s: %v", ref, err)
	}
	return got
}

func tryReadBranch(r *repo.Repo, ref, dir string) (files, error) {
	ws, _, err := r.Engine.Open(ctx, ref)
	if err != nil {
		return nil, err
	}
	dst := filepath.Join(dir, "out")
	if err := transfer.Export(ctx, ws, dst); err != nil {
		return nil, err
	}
	return readDir(dst)
}

func readDir(dir string) (files, error) {
	out := files{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = data
		return nil
	})
	return out, err
}

func sameFiles(t *testing.T, what string, got, want files) {
	t.Helper()
	for p, w := range want {
		g, ok := got[p]
		if !ok {
			t.Errorf("%s: %s missing", what, p)
		} else if !bytes.Equal(g, w) {
			t.Errorf("%s: %s differs (%d bytes, want %d)", what, p, len(g), len(w))
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: unexpected %s", what, p)
		}
	}
}

func size(fs files) int64 {
	var n int64
	for _, d := range fs {
		n += int64(len(d))
	}
	return n
}
