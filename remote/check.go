package remote

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/agentfs/agentfs/backends"
	"github.com/agentfs/agentfs/branch"
	"github.com/agentfs/agentfs/store"
)

// Problem is an object a remote should hold and does not (or holds broken), with the branch
// and path it breaks.
type Problem struct {
	Ref    string `json:"ref"`    // e.g. "remote origin branch main"
	Path   string `json:"path"`   // the file (or tree region) it affects
	Object string `json:"object"` // checkpoint, tree node, data block
	ID     string `json:"id"`
	Error  string `json:"error"`
}

// CheckResult is what Check found in one remote.
type CheckResult struct {
	Remote   string    `json:"remote"`
	Refs     int       `json:"refs"`
	Pending  int       `json:"pending"` // unfinished pushes of this repository checked
	Objects  int64     `json:"objects"` // objects checked
	Problems []Problem `json:"problems"`
}

// maxProblemsPerRef bounds the lines one broken ref produces; the rest are counted.
const maxProblemsPerRef = 50

// Check verifies that remote holds every object reachable from each of its branch refs and
// from each unfinished push of this repository: each must be listed by an index in the
// bucket and, with verifyData, read back from its pack and match its hash. It reports what
// is missing by branch and path. An unfinished push whose commit the ref now names is
// forgotten; any other is reported (the push was interrupted before its ref moved).
func (m *Manager) Check(ctx context.Context, remote string, verifyData bool) (*CheckResult, error) {
	res := &CheckResult{Remote: remote, Problems: []Problem{}}
	b, err := m.backend(ctx, remote)
	if err != nil {
		return nil, err
	}
	lock := m.remoteLock(remote)
	lock.Lock()
	defer lock.Unlock()
	if err := m.refresh(ctx, remote, b, nil); err != nil {
		return nil, err
	}
	ring, err := m.ring(ctx, remote)
	if err != nil {
		return nil, err
	}
	heads := map[string]store.ID{}
	err = b.List(ctx, dirRefs, func(oi backends.ObjectInfo) error {
		name := strings.TrimPrefix(oi.Key, dirRefs)
		data, _, err := getCapped(ctx, b, oi.Key, maxRefSize)
		if errors.Is(err, backends.ErrNotExist) {
			return nil
		}
		if err == nil {
			heads[name], err = decodeRef(ring, name, data)
		}
		if err != nil {
			res.Problems = append(res.Problems, Problem{Ref: "remote " + remote + " ref " + oi.Key, Path: "-", Object: "ref", Error: err.Error()})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("remote %s: list refs: %w", remote, err)
	}
	names := make([]string, 0, len(heads))
	for n := range heads {
		names = append(names, n)
	}
	sort.Strings(names)
	seen := map[store.ID]bool{}
	for _, n := range names {
		res.Refs++
		ref := "remote " + remote + " branch " + n
		if branch.ValidateName("branch", n) != nil {
			ref = fmt.Sprintf("remote %s ref %q", remote, n)
		}
		if err := m.checkHead(ctx, remote, b, ref, heads[n], verifyData, seen, res); err != nil {
			return nil, err
		}
	}
	pending, err := m.PendingPushes(remote)
	if err != nil {
		return nil, err
	}
	for _, p := range pending {
		id, _ := store.ParseID(p.Commit)
		if heads[p.Branch] == id {
			if err := m.clearPending(remote, p.Branch); err != nil {
				return nil, err
			}
			continue
		}
		res.Pending++
		ref := fmt.Sprintf("remote %s: interrupted push of branch %s (checkpoint %s)", remote, p.Branch, id.String()[:12])
		before := len(res.Problems)
		if err := m.checkHead(ctx, remote, b, ref, id, verifyData, map[store.ID]bool{}, res); err != nil {
			return nil, err
		}
		if len(res.Problems) == before {
			res.Problems = append(res.Problems, Problem{Ref: ref, Path: "-", Object: "ref", ID: id.String(),
				Error: fmt.Sprintf("the remote holds its objects but its ref was never moved; run agentfs push %s %s", remote, p.Branch)})
		} else {
			res.Problems = append(res.Problems, Problem{Ref: ref, Path: "-", Object: "ref", ID: id.String(),
				Error: fmt.Sprintf("incomplete in the remote; run agentfs push %s %s to finish it", remote, p.Branch)})
		}
	}
	return res, nil
}

// checkHead checks everything reachable from head (objects in seen were checked already).
func (m *Manager) checkHead(ctx context.Context, remote string, b backends.Backend, ref string, head store.ID, verifyData bool, seen map[store.ID]bool, res *CheckResult) error {
	n := 0
	root := &branch.Root{Kind: branch.RootBranch, Branch: ref}
	report := func(r reached, why string) {
		n++
		if n > maxProblemsPerRef {
			return
		}
		ob := &branch.Object{ID: r.id, Kind: branch.ObjectKind(kindName(r.kind)), Root: root, Commit: r.commit, TreeRoot: r.root, Key: r.key}
		res.Problems = append(res.Problems, Problem{Ref: ref, Path: m.e.Where(ctx, ob), Object: kindName(r.kind), ID: r.id.String(), Error: why})
	}
	err := m.walkReachable(ctx, head, nil, func(r reached) bool {
		if seen[r.id] {
			return false
		}
		seen[r.id] = true
		res.Objects++
		l, ok, err := m.locate(remote, r.id)
		switch {
		case err != nil:
			report(r, "unreadable: "+err.Error())
		case !ok:
			report(r, "missing from the remote")
		case verifyData:
			if err := m.readBack(ctx, b, r.id, l); err != nil {
				report(r, "the remote's copy is broken: "+err.Error())
			}
		}
		return true
	}, func(r reached, err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		report(r, "unreadable: "+err.Error())
		return nil
	})
	if n > maxProblemsPerRef {
		res.Problems = append(res.Problems, Problem{Ref: ref, Path: "-", Object: "-", Error: fmt.Sprintf("and %d more broken objects", n-maxProblemsPerRef)})
	}
	return err
}

// readBack reads one object from its pack in the bucket and checks its hash.
func (m *Manager) readBack(ctx context.Context, b backends.Backend, id store.ID, l location) error {
	ring, err := m.ring(ctx, l.remote)
	if err != nil {
		return err
	}
	data, err := readAll(ctx, b, packKey(l.pack), int64(l.off), int64(l.length))
	if err != nil {
		return fmt.Errorf("read pack %s: %w", l.pack, err)
	}
	_, err = ring.decodeObject(id, data)
	return err
}
