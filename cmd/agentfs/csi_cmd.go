package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentfs/agentfs/api"
	"github.com/agentfs/agentfs/internal/csidriver"
	"github.com/agentfs/agentfs/internal/repo"
)

func csiCmd() *cobra.Command {
	var endpoint, nodeID string
	cmd := &cobra.Command{
		Use:   "csi --endpoint unix:///PATH --node-id ID",
		Short: "Serve the Kubernetes CSI driver: a volume is a branch, a snapshot a checkpoint",
		Long: "csi serves the Container Storage Interface (Identity, Controller, Node) for Kubernetes.\n" +
			"It is a client of the daemon (agentfs serve) of --repo: it waits for the daemon's socket,\n" +
			"and the daemon makes the mounts. See docs/containers.md.",
		Args: nargs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			if endpoint == "" {
				return usageError{fmt.Errorf("csi needs --endpoint unix:///PATH")}
			}
			return runClient("csi", func(ctx context.Context, daemon *api.Client, logger *log.Logger) error {
				d := &csidriver.Driver{Daemon: daemon, NodeID: nodeID, RepoDir: repoDir(), Version: Version, Logger: logger}
				return d.Serve(ctx, endpoint)
			})
		},
	}
	cmd.Flags().StringVar(&endpoint, "endpoint", "", "where to serve CSI, unix:///path/csi.sock")
	cmd.Flags().StringVar(&nodeID, "node-id", "", "this node's name (Kubernetes: spec.nodeName)")
	return cmd
}

// runClient runs serve, a long-running client of the daemon of --repo (csi,
// docker-plugin), with a logger prefixed by its name, until SIGTERM or SIGINT. It waits for
// the daemon while it starts.
func runClient(name string, serve func(ctx context.Context, daemon *api.Client, logger *log.Logger) error) error {
	logger := log.New(os.Stderr, "agentfs "+name+": ", log.LstdFlags)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	daemon, err := awaitDaemon(ctx, repoDir(), logger)
	if err != nil {
		return err
	}
	return serve(ctx, daemon, logger)
}

// awaitDaemon dials the daemon of dir, waiting while it starts (in a pod, the daemon's
// container may start after this one).
func awaitDaemon(ctx context.Context, dir string, logger *log.Logger) (*api.Client, error) {
	sock := repo.SocketPath(dir)
	for i := 0; ; i++ {
		c, err := api.Dial(sock)
		if err == nil {
			return c, nil
		}
		if i%50 == 0 {
			logger.Printf("waiting for the agentfs daemon at %s (start it with: agentfs --repo %s serve --init)", sock, dir)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no agentfs daemon answered at %s", sock)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
