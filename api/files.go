package api

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"syscall"

	"github.com/agentfs/agentfs/branch"
)

// File calls let a client change a branch's files without a mount (the MCP server and
// token holders use them). Paths are relative to the branch root; a leading "/" is allowed,
// ".." is not. A mount of the branch sees the change at once (its kernel caches are
// invalidated as after a rollback).

// CleanPath checks a path inside a branch and returns it without leading or trailing
// slashes ("" is the root).
func CleanPath(p string) (string, error) {
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return "", fmt.Errorf("%w: path %q: '..' is not allowed in a path inside a branch", branch.ErrInvalidName, p)
		}
	}
	if strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("%w: path %q contains a NUL byte", branch.ErrInvalidName, p)
	}
	return strings.Trim(path.Clean("/"+p), "/"), nil
}

// fileWorkspace returns the branch's workspace and the inode of p's parent directory.
func (l *Local) fileParent(ctx context.Context, br, p string) (*branch.Workspace, uint64, string, error) {
	clean, err := CleanPath(p)
	if err != nil {
		return nil, 0, "", err
	}
	if clean == "" {
		return nil, 0, "", fmt.Errorf("%w: %q names the branch root, not a file", branch.ErrInvalidName, p)
	}
	ws, err := l.Engine.Workspace(ctx, br)
	if err != nil {
		return nil, 0, "", err
	}
	dir, name := path.Split(clean)
	_, n, err := l.walk(ctx, br, dir)
	if err != nil {
		return nil, 0, "", err
	}
	if !n.IsDir() {
		return nil, 0, "", fmt.Errorf("%w: %s:%s is not a directory", branch.ErrInvalidName, br, strings.TrimSuffix(dir, "/"))
	}
	return ws, n.Ino, name, nil
}

// WriteFile creates or replaces the file at p in branch br with data (mode 0644 when new).
func (l *Local) WriteFile(ctx context.Context, br, p string, data []byte) error {
	ws, dir, name, err := l.fileParent(ctx, br, p)
	if err != nil {
		return err
	}
	n, err := ws.Lookup(ctx, dir, name)
	if errors.Is(err, syscall.ENOENT) {
		n, err = ws.Create(ctx, dir, name, branch.Attr{Mode: syscall.S_IFREG | 0o644})
	}
	if err != nil {
		return fmt.Errorf("%s:%s: %w", br, p, err)
	}
	if !n.IsRegular() {
		return fmt.Errorf("%w: %s:%s is not a regular file", branch.ErrInvalidName, br, p)
	}
	ws.Open(n.Ino) // a reference of our own: Release must not drop a mount's
	err = func() error {
		zero := uint64(0)
		if _, err := ws.SetAttr(ctx, n.Ino, branch.SetAttr{Size: &zero}); err != nil {
			return err
		}
		for off := 0; off < len(data); {
			k, err := ws.Write(ctx, n.Ino, int64(off), data[off:])
			if err != nil {
				return err
			}
			off += k
		}
		return nil
	}()
	if rerr := ws.Release(ctx, n.Ino); err == nil {
		err = rerr
	}
	ws.NotifyChanged()
	if err != nil {
		return fmt.Errorf("%s:%s: %w", br, p, err)
	}
	return nil
}

// MakeDir creates the directory p and its missing parents in branch br; an existing
// directory is fine.
func (l *Local) MakeDir(ctx context.Context, br, p string) error {
	clean, err := CleanPath(p)
	if err != nil {
		return err
	}
	ws, err := l.Engine.Workspace(ctx, br)
	if err != nil {
		return err
	}
	defer ws.NotifyChanged()
	ino := uint64(branch.RootIno)
	for _, part := range strings.Split(clean, "/") {
		if part == "" {
			continue
		}
		n, err := ws.Lookup(ctx, ino, part)
		if errors.Is(err, syscall.ENOENT) {
			n, err = ws.Mkdir(ctx, ino, part, branch.Attr{Mode: syscall.S_IFDIR | 0o755})
		}
		if err != nil {
			return fmt.Errorf("%s:%s: %w", br, p, err)
		}
		if !n.IsDir() {
			return fmt.Errorf("%s:%s: %s is not a directory", br, p, part)
		}
		ino = n.Ino
	}
	return nil
}

// Move renames src to dst in branch br; it fails if dst exists.
func (l *Local) Move(ctx context.Context, br, src, dst string) error {
	ws, sdir, sname, err := l.fileParent(ctx, br, src)
	if err != nil {
		return err
	}
	_, ddir, dname, err := l.fileParent(ctx, br, dst)
	if err != nil {
		return err
	}
	const renameNoReplace = 1
	err = ws.Rename(ctx, sdir, sname, ddir, dname, renameNoReplace)
	ws.NotifyChanged()
	switch {
	case errors.Is(err, syscall.EEXIST):
		return fmt.Errorf("%s:%s %w; move it away first", br, dst, branch.ErrExists)
	case errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("%s:%s: %w", br, src, branch.ErrNotFound)
	case err != nil:
		return fmt.Errorf("move %s:%s to %s: %w", br, src, dst, err)
	}
	return nil
}

func (c *Client) WriteFile(ctx context.Context, br, p string, data []byte) error {
	_, err := do[struct{}](ctx, c, "file.write", Request{Branch: br, Path: p, Data: data})
	return err
}

func (c *Client) MakeDir(ctx context.Context, br, p string) error {
	_, err := do[struct{}](ctx, c, "file.mkdir", Request{Branch: br, Path: p})
	return err
}

func (c *Client) Move(ctx context.Context, br, src, dst string) error {
	_, err := do[struct{}](ctx, c, "file.move", Request{Branch: br, Path: src, Path2: dst})
	return err
}

func init() {
	calls["file.write"] = func(ctx context.Context, s Service, r Request) (any, error) {
		return struct{}{}, s.WriteFile(ctx, r.Branch, r.Path, r.Data)
	}
	calls["file.mkdir"] = func(ctx context.Context, s Service, r Request) (any, error) {
		return struct{}{}, s.MakeDir(ctx, r.Branch, r.Path)
	}
	calls["file.move"] = func(ctx context.Context, s Service, r Request) (any, error) {
		return struct{}{}, s.Move(ctx, r.Branch, r.Path, r.Path2)
	}
}
