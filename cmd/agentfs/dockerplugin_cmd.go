package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/agentfs/agentfs/api"
	"github.com/agentfs/agentfs/internal/dockerplugin"
)

func dockerPluginCmd() *cobra.Command {
	var sock, mountRoot string
	cmd := &cobra.Command{
		Use:   "docker-plugin [--socket PATH] [--mount-root DIR]",
		Short: "Serve the Docker volume plugin: a volume is a branch, -o from=REF forks",
		Long: "docker-plugin serves Docker's volume plugin protocol on a Unix socket. Docker finds it\n" +
			"by the socket's name in /run/docker/plugins (docker volume create -d agentfs ...).\n" +
			"It is a client of the daemon (agentfs serve) of --repo. See docs/containers.md.",
		Args: nargs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			root, err := absPath(mountRoot)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(root, 0o755); err != nil {
				return err
			}
			if real, err := filepath.EvalSymlinks(root); err == nil {
				root = real
			}
			return runClient("docker-plugin", func(ctx context.Context, daemon *api.Client, logger *log.Logger) error {
				if err := os.MkdirAll(filepath.Dir(sock), 0o755); err != nil {
					return err
				}
				os.Remove(sock) // a socket left by a plugin that died: nobody serves it
				ln, err := net.Listen("unix", sock)
				if err != nil {
					return fmt.Errorf("listen on %s: %w", sock, err)
				}
				p := &dockerplugin.Plugin{Daemon: daemon, MountRoot: root, Logger: logger}
				srv := &http.Server{Handler: p.Handler(), ErrorLog: logger}
				go func() {
					<-ctx.Done()
					srv.Close()
				}()
				logger.Printf("serving the volume plugin on %s, mounting volumes under %s", sock, root)
				if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
					return err
				}
				os.Remove(sock)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&sock, "socket", "/run/docker/plugins/agentfs.sock", "Unix socket to serve the plugin protocol on")
	cmd.Flags().StringVar(&mountRoot, "mount-root", "/var/lib/agentfs/docker-volumes", "directory under which volumes are mounted")
	return cmd
}
