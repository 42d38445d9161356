package api

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/agentfs/agentfs/branch"
)

// invalidError is a bad argument: code invalid (HTTP 400), with only its own message.
type invalidError struct{ msg string }

func (e invalidError) Error() string        { return e.msg }
func (e invalidError) Is(target error) bool { return target == branch.ErrInvalidName }

func invalidf(format string, a ...any) error { return invalidError{fmt.Sprintf(format, a...)} }

// AllowPaths confines import and export to the given host directories (serve --allow-path).
// With none, any absolute path is accepted. The directories must exist; they are kept with
// their symbolic links resolved, so that a link inside them cannot lead out.
func (l *Local) AllowPaths(dirs []string) error {
	l.allowed = nil
	for _, d := range dirs {
		if !filepath.IsAbs(d) {
			return fmt.Errorf("--allow-path %s: give an absolute path", d)
		}
		real, err := filepath.EvalSymlinks(d)
		if err != nil {
			return fmt.Errorf("--allow-path %s: %v", d, errors.Unwrap(err))
		}
		l.allowed = append(l.allowed, real)
	}
	return nil
}

// hostPath checks a host path that import or export received: absolute (the daemon's working
// directory means nothing to its client), and inside an allowed directory when there are
// any. The path itself may not exist yet (export creates it): its nearest existing ancestor
// is resolved instead, and the rest may not contain symbolic links since it does not exist.
func (l *Local) hostPath(call, p string) (string, error) {
	if p == "" {
		return "", invalidf("%s needs a host directory", call)
	}
	if !filepath.IsAbs(p) {
		return "", invalidf("%s path %q is relative; give an absolute path", call, p)
	}
	if strings.ContainsRune(p, 0) {
		return "", invalidf("%s path %q contains a NUL byte", call, p)
	}
	p = filepath.Clean(p)
	if len(l.allowed) == 0 {
		return p, nil
	}
	real, rest := p, ""
	for {
		r, err := filepath.EvalSymlinks(real)
		if err == nil {
			real = filepath.Join(r, rest)
			break
		}
		if real == "/" {
			break
		}
		rest = filepath.Join(filepath.Base(real), rest)
		real = filepath.Dir(real)
	}
	for _, a := range l.allowed {
		if real == a || strings.HasPrefix(real, a+string(filepath.Separator)) || a == "/" {
			return real, nil
		}
	}
	return "", fmt.Errorf("%w: %s path %s is outside the directories this daemon allows (serve --allow-path %s)",
		branch.ErrInvalidName, call, p, strings.Join(l.allowed, " --allow-path "))
}

// checkExportDir refuses an export into anything but a new or empty directory.
func checkExportDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return invalidf("export: %s: %v", dir, errors.Unwrap(err))
	case !fi.IsDir():
		return invalidf("export: %s is not a directory", dir)
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return invalidf("export: %s is not empty; export into a new or empty directory", dir)
	}
	return nil
}

// checkImportDir turns the usual mistakes with an import directory into invalid or
// not-found errors (HTTP 400/404), before any work starts.
func checkImportDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("import: %s does not exist: %w", dir, branch.ErrNotFound)
	case err != nil:
		return invalidf("import: %s: %v", dir, errors.Unwrap(err))
	case !fi.IsDir():
		return invalidf("import: %s is not a directory", dir)
	}
	return nil
}
