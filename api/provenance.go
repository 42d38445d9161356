package api

import (
	"context"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"

	"github.com/agentfs/agentfs/branch"
)

// PathLists are the paths a checkpoint created, modified and deleted since its first parent.
type PathLists struct {
	Created   []string `json:"created"`
	Modified  []string `json:"modified"`
	Deleted   []string `json:"deleted"`
	Truncated bool     `json:"truncated,omitempty"` // more than maxListedPaths in one list
}

// maxListedPaths bounds each list in a log, so that a checkpoint of a large import does not
// make every log reply huge; the counts in Files stay exact.
const maxListedPaths = 1000

func pathLists(changes []branch.Change) *PathLists {
	l := &PathLists{Created: []string{}, Modified: []string{}, Deleted: []string{}}
	for _, c := range changes {
		var dst *[]string
		switch c.Kind {
		case "added":
			dst = &l.Created
		case "modified":
			dst = &l.Modified
		case "deleted":
			dst = &l.Deleted
		default:
			continue
		}
		if len(*dst) >= maxListedPaths {
			l.Truncated = true
			continue
		}
		*dst = append(*dst, c.Path)
	}
	return l
}

type callerKey struct{}

// WithCaller records who is calling (a token id, or uid:N for a local user), as established
// by the transport: the Unix socket's peer credentials, or a bearer token.
func WithCaller(ctx context.Context, caller string) context.Context {
	return context.WithValue(ctx, callerKey{}, caller)
}

// CallerOf returns the caller recorded in ctx, else this process's uid.
func CallerOf(ctx context.Context) string {
	if c, ok := ctx.Value(callerKey{}).(string); ok && c != "" {
		return c
	}
	return fmt.Sprintf("uid:%d", os.Getuid())
}

// CheckpointWith is Checkpoint with provenance. The caller is always the one the transport
// established, whatever o says, so that nobody can sign a checkpoint as somebody else.
func (l *Local) CheckpointWith(ctx context.Context, br string, o branch.CheckpointOptions) (CheckpointInfo, error) {
	o.Caller = CallerOf(ctx)
	id, changes, err := l.Engine.CheckpointWith(ctx, br, o)
	if err != nil {
		return CheckpointInfo{}, err
	}
	info, err := l.checkpointInfo(ctx, id)
	info.Paths = pathLists(changes)
	return info, err
}

func (c *Client) CheckpointWith(ctx context.Context, br string, o branch.CheckpointOptions) (CheckpointInfo, error) {
	return do[CheckpointInfo](ctx, c, "checkpoint", Request{Branch: br, Name: o.Name, Message: o.Message, Provenance: &o.Provenance})
}

// logPaths fills in the path lists of a log entry from the diff with its first parent.
func (l *Local) logPaths(ctx context.Context, info *CheckpointInfo, c *branch.Commit) error {
	if len(c.Parents) == 0 || c.Files == (branch.FileCounts{}) {
		return nil
	}
	p, err := l.Engine.ReadCommit(ctx, c.Parents[0])
	if err != nil {
		return nil // history before a pruned checkpoint
	}
	changes, err := l.Engine.DiffRoots(ctx, p.Root, c.Root)
	if err != nil {
		return err
	}
	info.Paths = pathLists(changes)
	return nil
}

// UnixConnContext is an http.Server ConnContext for the Unix socket: it records the peer's
// uid (SO_PEERCRED) as the caller of every request on the connection.
func UnixConnContext(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ctx
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return ctx
	}
	var cred *unix.Ucred
	raw.Control(func(fd uintptr) { cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
	if err != nil || cred == nil {
		return ctx
	}
	return WithCaller(ctx, fmt.Sprintf("uid:%d", cred.Uid))
}
