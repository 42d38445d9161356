package backendtest

import (
	"io"
	"strconv"
	"testing"

	"github.com/fsouza/fake-gcs-server/fakestorage"
)

// StartFakeGCS runs fake-gcs-server in-process on loopback (plain http) for the duration of
// the test, creates the buckets and returns host:port for STORAGE_EMULATOR_HOST.
func StartFakeGCS(t testing.TB, buckets ...string) string {
	t.Helper()
	port := freePort(t)
	host := "127.0.0.1:" + strconv.Itoa(port)
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		Scheme:      "http",
		Host:        "127.0.0.1",
		Port:        uint16(port),
		ExternalURL: "http://" + host,
		PublicHost:  host,
		Writer:      io.Discard,
	})
	if err != nil {
		t.Fatalf("starting fake-gcs-server: %v", err)
	}
	t.Cleanup(srv.Stop)
	for _, b := range buckets {
		srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: b})
	}
	return host
}
