// Package testenv finds things tests use from the machine they run on.
package testenv

import (
	"os/exec"
	"strings"
	"sync"
)

var goroot = sync.OnceValue(func() string {
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
})

// GOROOT returns `go env GOROOT`: a source tree nobody here wrote, present wherever Go is
// installed ("" if the go command is missing).
func GOROOT() string { return goroot() }
