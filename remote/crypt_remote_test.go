package remote_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/agentfs/agentfs/backends"
)

// TestEncryptedProviders runs the round trip (two hosts pushing and pulling), the collection
// and the lazy clone on encrypted remotes, file:// and S3 (versitygw on loopback). The key
// comes from AGENTFS_REMOTE_KEY, so every first push makes its bucket encrypted; each case
// checks afterwards that the bucket's marker says so.
func TestEncryptedProviders(t *testing.T) {
	t.Setenv("AGENTFS_REMOTE_KEY", strings.Repeat("ab", 32))
	t.Setenv("AGENTFS_LAZY_MB", "8")
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, url string)
	}{
		{"RoundTrip", testRoundTrip},
		{"GC", testGC},
		{"LazyClone", testLazyClone},
	} {
		t.Run(tc.name+"/file", func(t *testing.T) {
			url := "file://" + t.TempDir()
			tc.run(t, url)
			checkEncrypted(t, url)
		})
		t.Run(tc.name+"/s3", func(t *testing.T) {
			srv := startS3(t)
			url := s3URL(t, srv, srv.Endpoint, "enc"+strings.ToLower(tc.name))
			tc.run(t, url)
			checkEncrypted(t, url)
		})
	}
}

func checkEncrypted(t *testing.T, url string) {
	t.Helper()
	b, err := backends.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	data, _, err := b.GetWithETag(ctx, "agentfs.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(`"version":2`)) || !bytes.Contains(data, []byte("xchacha20-poly1305")) {
		t.Fatalf("the bucket is not encrypted: %s", data)
	}
}
