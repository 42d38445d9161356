package main

import (
	"os/exec"
	"strings"
)

// versionLDFlags stamps the commit into the test binary the way make build does.
func versionLDFlags() string {
	commit, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		return ""
	}
	modified := "false"
	if out, _ := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); len(out) > 0 {
		modified = "true"
	}
	return "-X main.buildCommit=" + strings.TrimSpace(string(commit)) + " -X main.buildModified=" + modified
}
