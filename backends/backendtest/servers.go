package backendtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
)

// RequireBackends reports whether AGENTFS_REQUIRE_BACKENDS=1: a missing server binary then
// fails the test instead of skipping it (CI sets it).
func RequireBackends() bool { return os.Getenv("AGENTFS_REQUIRE_BACKENDS") == "1" }

// SkipOrFail skips t with msg, or fails it when AGENTFS_REQUIRE_BACKENDS=1.
func SkipOrFail(t testing.TB, msg string) {
	t.Helper()
	if RequireBackends() {
		t.Fatalf("%s (AGENTFS_REQUIRE_BACKENDS=1, so this is a failure; run .ci/install-backends.sh)", msg)
	}
	t.Skipf("%s; run .ci/install-backends.sh to install it (set AGENTFS_REQUIRE_BACKENDS=1 to fail instead of skipping)", msg)
}

// findBinary looks in $envVar, then PATH, then the extra locations.
func findBinary(envVar, name string, extra ...string) (string, string) {
	if p := os.Getenv(envVar); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Sprintf("%s=%s: %v", envVar, p, err)
		}
		return p, ""
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, ""
	}
	for _, p := range extra {
		if _, err := os.Stat(p); err == nil {
			return p, ""
		}
	}
	return "", fmt.Sprintf("%s not found (looked at $%s, PATH, %v)", name, envVar, extra)
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// lockedBuffer collects a server's output for failure messages.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 1<<20 {
		return len(p), nil
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startServer runs cmd until the test ends and waits until ready returns true.
func startServer(t testing.TB, what string, cmd *exec.Cmd, ready func() bool) {
	t.Helper()
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", what, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	deadline := time.Now().Add(60 * time.Second)
	for !ready() {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("%s exited before it was ready: %v\n%s", what, err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after 60s; output:\n%s", what, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func httpReady(url string) func() bool {
	c := &http.Client{Timeout: time.Second}
	return func() bool {
		resp, err := c.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	}
}

// S3Server is a running versitygw.
type S3Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	AccessKey string
	SecretKey string
	Dir       string // the posix backend directory: one subdirectory per bucket
}

// StartVersityGW starts versitygw (an S3 gateway over a local directory) on loopback for the
// duration of the test. The binary comes from $AGENTFS_VERSITYGW, PATH or $GOPATH/bin.
func StartVersityGW(t testing.TB) *S3Server {
	t.Helper()
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		home, _ := os.UserHomeDir()
		gopath = filepath.Join(home, "go")
	}
	bin, why := findBinary("AGENTFS_VERSITYGW", "versitygw", filepath.Join(gopath, "bin", "versitygw"))
	if bin == "" {
		SkipOrFail(t, "S3 server versitygw: "+why)
	}
	s := &S3Server{AccessKey: "agentfs-test-key", SecretKey: "agentfs-test-secret", Dir: t.TempDir()}
	port := freePort(t)
	s.Endpoint = "http://127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(bin, "--port", "127.0.0.1:"+strconv.Itoa(port), "--keep-alive", "--quiet", "posix", s.Dir)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
	startServer(t, "versitygw", cmd, httpReady(s.Endpoint))
	return s
}

// AzureServer is a running Azurite blob service.
type AzureServer struct {
	Endpoint   string // http://127.0.0.1:PORT/devstoreaccount1
	Account    string
	AccountKey string
}

// AzuriteAccount and AzuriteKey are Azurite's well-known development credentials.
const (
	AzuriteAccount = "devstoreaccount1"
	AzuriteKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// StartAzurite starts Azurite's blob service on loopback for the duration of the test. The
// program comes from $AGENTFS_AZURITE (the azurite-blob script), PATH, or
// /opt/agentfs-test/node_modules/.bin/azurite-blob (where .ci/install-backends.sh puts it).
func StartAzurite(t testing.TB) *AzureServer {
	t.Helper()
	bin, why := findBinary("AGENTFS_AZURITE", "azurite-blob", "/opt/agentfs-test/node_modules/.bin/azurite-blob")
	if bin == "" {
		SkipOrFail(t, "Azure server azurite: "+why)
	}
	if _, err := exec.LookPath("node"); err != nil {
		SkipOrFail(t, "Azure server azurite: node not on PATH")
	}
	port := freePort(t)
	dir := t.TempDir()
	cmd := exec.Command(bin, "--skipApiVersionCheck", "--disableTelemetry", "--blobHost", "127.0.0.1",
		"--blobPort", strconv.Itoa(port), "--location", dir, "--silent")
	s := &AzureServer{
		Endpoint:   fmt.Sprintf("http://127.0.0.1:%d/%s", port, AzuriteAccount),
		Account:    AzuriteAccount,
		AccountKey: AzuriteKey,
	}
	startServer(t, "azurite-blob", cmd, httpReady(s.Endpoint))
	return s
}

// StartAzuriteContainers starts Azurite, points the Azure backend at it through the
// environment (shared key, no SAS token), and creates the containers.
func StartAzuriteContainers(t testing.TB, containers ...string) *AzureServer {
	t.Helper()
	srv := StartAzurite(t)
	t.Setenv("AZURE_STORAGE_KEY", srv.AccountKey)
	t.Setenv("AZURE_STORAGE_SAS_TOKEN", "")
	cred, err := azblob.NewSharedKeyCredential(srv.Account, srv.AccountKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := azblob.NewClientWithSharedKeyCredential(srv.Endpoint, cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range containers {
		if _, err := c.CreateContainer(context.Background(), name, nil); err != nil {
			t.Fatalf("CreateContainer(%s): %v", name, err)
		}
	}
	return srv
}
