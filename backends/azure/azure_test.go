package azure_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/agentfs/agentfs/backends"
	_ "github.com/agentfs/agentfs/backends/azure"
	"github.com/agentfs/agentfs/backends/backendtest"
)

func setup(t *testing.T, containers ...string) *backendtest.AzureServer {
	return backendtest.StartAzuriteContainers(t, containers...)
}

func url(srv *backendtest.AzureServer, containerAndPrefix string) string {
	return "az://" + srv.Account + "/" + containerAndPrefix + "?endpoint=" + srv.Endpoint
}

func TestConformance(t *testing.T) {
	srv := setup(t, "agentfs")
	for _, p := range []string{"agentfs/repo/one", "agentfs"} {
		t.Run(p, func(t *testing.T) {
			b, err := backends.Open(context.Background(), url(srv, p))
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			backendtest.Run(t, b)
		})
	}
}

func TestMissingContainer(t *testing.T) {
	srv := setup(t)
	_, err := backends.Open(context.Background(), url(srv, "no-such-container/x"))
	if !errors.Is(err, backends.ErrNotExist) || !strings.Contains(err.Error(), `"no-such-container" does not exist`) {
		t.Fatalf("Open(missing container) = %v, want ErrNotExist naming the container", err)
	}
	t.Logf("missing container: %v", err)
}

func TestBadCredentials(t *testing.T) {
	srv := setup(t, "agentfs")
	t.Setenv("AZURE_STORAGE_KEY", "d3JvbmcK"+strings.Repeat("A", 80))
	_, err := backends.Open(context.Background(), url(srv, "agentfs/x"))
	if !errors.Is(err, backends.ErrPermission) || !strings.Contains(err.Error(), "az://devstoreaccount1/agentfs/x") {
		t.Fatalf("Open(bad key) = %v, want ErrPermission naming the container", err)
	}
	t.Logf("bad credentials: %v", err)
}

func TestBadURL(t *testing.T) {
	for _, u := range []string{"az://acct", "az:///c/p", "az://acct/c?region=x"} {
		if _, err := backends.Open(context.Background(), u); err == nil {
			t.Errorf("Open(%q) succeeded", u)
		}
	}
}
