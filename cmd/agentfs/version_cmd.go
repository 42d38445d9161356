package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// buildVersion is what this binary knows about itself: the module version and the commit
// the Go toolchain stamped into it (go build in a git checkout records both).
type buildVersion struct {
	Version  string `json:"version"`
	Commit   string `json:"commit"`
	Time     string `json:"time,omitempty"` // commit time
	Modified bool   `json:"modified"`       // built from a checkout with uncommitted changes
	Go       string `json:"go"`
	Platform string `json:"platform"`
}

// buildCommit and buildModified are set by make build (-ldflags -X) from git, for builds
// where the go command stamps no VCS information: git worktrees (.git is a file there) and
// GOFLAGS=-buildvcs=false. The build info wins when it has them.
var buildCommit, buildModified string

func readVersion() buildVersion {
	v := buildVersion{Version: Version, Commit: "unknown", Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if buildCommit != "" {
		v.Commit, v.Modified = buildCommit, buildModified == "true"
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if v.Version == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
		v.Version = info.Main.Version
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

// String is the line of agentfs version and agentfs --version.
func (v buildVersion) String() string {
	commit := short(v.Commit)
	if v.Modified {
		commit += ", modified"
	}
	return fmt.Sprintf("agentfs %s (commit %s) %s %s", v.Version, commit, v.Go, v.Platform)
}

func versionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version [--json]",
		Short: "Print the version, the commit it was built from and the Go version",
		Args:  nargs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			v := readVersion()
			return done(asJSON, v, "%s", v)
		},
	}
	jsonFlag(cmd, &asJSON)
	return cmd
}
