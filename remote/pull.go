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

// PullOptions configure a pull or clone.
type PullOptions struct {
	// Full fetches file contents too; by default (lazy) only commits and tree nodes come,
	// and file blocks are fetched on first read.
	Full bool
	// NoMerge makes a pull of a diverged branch fail with ErrDiverged instead of merging.
	NoMerge bool
	// Trust, when not nil, replaces the public keys this repository trusts for the remote
	// (remembered): the ref must be signed by one of them (sign.go). Empty: any.
	Trust []string `json:"trust,omitempty"`
	// KeyFiles are the remote's key files (clone only; remote add --key-file otherwise).
	KeyFiles []string `json:"key_files,omitempty"`
}

// PullResult says what a pull did.
type PullResult struct {
	Remote       string            `json:"remote"`
	Branch       string            `json:"branch"`
	Commit       string            `json:"commit"` // the local branch's base afterwards
	RemoteCommit string            `json:"remote_commit"`
	Action       string            `json:"action"` // created, fast-forward, up-to-date, ahead, merged
	Objects      int64             `json:"objects"`
	Bytes        int64             `json:"bytes"`
	Conflicts    []branch.Conflict `json:"conflicts,omitempty"`
	FetchedData  bool              `json:"fetched_data"`
	Signer       string            `json:"signer,omitempty"` // who signed the remote ref, when it verified
}

// Branches lists the branches of a remote with their commits.
func (m *Manager) Branches(ctx context.Context, remote string) (map[string]string, error) {
	b, err := m.backend(ctx, remote)
	if err != nil {
		return nil, err
	}
	ring, err := m.ring(ctx, remote)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	err = b.List(ctx, dirRefs, func(oi backends.ObjectInfo) error {
		name := strings.TrimPrefix(oi.Key, dirRefs)
		if branch.ValidateName("branch", name) != nil {
			return nil
		}
		data, _, err := getCapped(ctx, b, oi.Key, maxRefSize)
		if errors.Is(err, backends.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		id, err := decodeRef(ring, name, data)
		if err != nil {
			return err
		}
		out[name] = id.String()
		return nil
	})
	return out, err
}

// Pull fetches branch br of remote and brings the local branch of the same name up to it:
// it creates the branch if missing, fast-forwards it when it has not diverged, and merges the
// remote commit into it (branch.Engine.Merge) when both have new commits, unless NoMerge is
// set. Uncommitted local changes are checkpointed first.
func (m *Manager) Pull(ctx context.Context, remote, br string, o PullOptions) (PullResult, error) {
	return m.pull(ctx, remote, br, o, false)
}

func (m *Manager) pull(ctx context.Context, remote, br string, o PullOptions, clone bool) (PullResult, error) {
	res := PullResult{Remote: remote, Branch: br, FetchedData: o.Full}
	if err := branch.ValidateName("branch", br); err != nil {
		return res, err
	}
	b, err := m.backend(ctx, remote)
	if err != nil {
		return res, err
	}
	lock := m.remoteLock(remote)
	lock.Lock()
	defer lock.Unlock()
	op := "pull"
	if clone {
		op = "clone"
	}
	t, done := m.begin(op, remote, br)
	defer done()

	data, etag, err := getCapped(ctx, b, refKey(br), maxRefSize)
	if errors.Is(err, backends.ErrNotExist) {
		return res, fmt.Errorf("remote %s has no branch %s: %w", remote, br, branch.ErrNotFound)
	}
	if err != nil {
		return res, fmt.Errorf("remote %s: read ref %s: %w", remote, br, err)
	}
	ring, err := m.ring(ctx, remote)
	if err != nil {
		return res, err
	}
	rec, head, err := parseRef(ring, br, data)
	if err != nil {
		return res, err
	}
	if o.Trust != nil {
		if err := m.configure(remote, Security{Trust: o.Trust}); err != nil {
			return res, err
		}
	}
	cfg, err := m.config(remote)
	if err != nil {
		return res, err
	}
	trust, err := parseTrust(cfg.Trust)
	if err != nil {
		return res, err
	}
	signed, err := verifyRef(remote, br, rec, head, trust)
	if err != nil {
		return res, err
	}
	res.RemoteCommit = head.String()
	if signed != nil {
		res.Signer = signed.Signer
	}
	t.set("index", 0, 0)
	if err := m.refresh(ctx, remote, b, t); err != nil {
		return res, err
	}
	before := m.stats.BytesDown.Load()
	t.set("fetch", 0, 0)
	n, err := m.fetchCommit(ctx, remote, b, head, o.Full, t)
	res.Objects, res.Bytes = n, m.stats.BytesDown.Load()-before
	if err != nil {
		return res, err
	}
	if err := m.st.Sync(); err != nil {
		return res, err
	}
	// The tree is checked before any branch points at it: a ref names any content that
	// hashes right, and the one who wrote it chose that content. Only what differs from the
	// local branch (checked or built here) is read.
	var trusted store.ID
	if lb, err := m.e.GetBranch(br); err == nil && !clone {
		trusted = lb.Base
	}
	if err := m.e.CheckCommit(ctx, head, trusted); err != nil {
		return res, fmt.Errorf("remote %s: branch %s: %w (the bucket's content is damaged or crafted); nothing was changed", remote, br, err)
	}
	if err := m.e.AdoptCommits(ctx, []store.ID{head}); err != nil {
		return res, err
	}
	if err := m.recordSigner(head, signed); err != nil {
		return res, err
	}

	// Bring the local branch to head.
	local, err := m.e.GetBranch(br)
	switch {
	case errors.Is(err, branch.ErrNotFound):
		if _, err := m.e.CreateBranchAt(ctx, br, head); err != nil {
			return res, err
		}
		res.Action, res.Commit = "created", head.String()
	case err != nil:
		return res, err
	case clone:
		// A fresh repository's own branch (main from init) is replaced.
		if err := m.e.FastForward(ctx, br, local.Base, head); err != nil {
			return res, err
		}
		res.Action, res.Commit = "created", head.String()
	default:
		if err := m.integrate(ctx, remote, br, head, o, &res); err != nil {
			return res, err
		}
	}
	return res, m.setTracking(remote, br, tracking{head, etag})
}

// integrate brings existing local branch br up to the fetched commit head.
func (m *Manager) integrate(ctx context.Context, remote, br string, head store.ID, o PullOptions, res *PullResult) error {
	ws, err := m.e.Workspace(ctx, br)
	if err != nil {
		return err
	}
	if changed, err := ws.Changed(); err != nil {
		return err
	} else if changed {
		if _, err := m.e.Checkpoint(ctx, br, "", "before pull from "+remote); err != nil {
			return err
		}
	}
	localHead := ws.Base()
	res.Commit = localHead.String()
	if localHead == head {
		res.Action = "up-to-date"
		return nil
	}
	if ok, err := m.e.DescendsFrom(ctx, head, localHead, historyLimit); err != nil {
		return err
	} else if ok {
		err := m.e.FastForward(ctx, br, localHead, head)
		if err == nil {
			res.Action, res.Commit = "fast-forward", head.String()
			return nil
		}
		if !errors.Is(err, branch.ErrNotFastForward) || ws.Base() != localHead || o.NoMerge {
			return err
		}
		// Writes made while the checkpoint above folded are carried past it: the branch
		// has uncommitted changes again. Merging keeps them, as for diverged branches.
		return m.merge(ctx, remote, br, head, res)
	}
	if ok, err := m.e.DescendsFrom(ctx, localHead, head, historyLimit); err != nil {
		return err
	} else if ok {
		res.Action = "ahead" // local has everything the remote has, and more: push it
		return nil
	}
	if o.NoMerge {
		return fmt.Errorf("%w: local branch %s and %s/%s both have new checkpoints; merge them with agentfs pull %s %s (without --no-merge)", ErrDiverged, br, remote, br, remote, br)
	}
	return m.merge(ctx, remote, br, head, res)
}

// merge merges the fetched commit head into local branch br.
func (m *Manager) merge(ctx context.Context, remote, br string, head store.ID, res *PullResult) error {
	mr, err := m.e.Merge(ctx, head.String(), br, branch.MergeOptions{Message: fmt.Sprintf("merge %s/%s into %s", remote, br, br)})
	if mr != nil {
		res.Conflicts = mr.Conflicts
	}
	if err != nil {
		if errors.Is(err, branch.ErrConflict) {
			return fmt.Errorf("%w: local branch %s and %s/%s have diverged and the merge has %d conflicts (first: %s); nothing was changed",
				ErrDiverged, br, remote, br, len(res.Conflicts), firstConflict(res.Conflicts))
		}
		return fmt.Errorf("local branch %s and %s/%s have diverged; merging failed: %w", br, remote, br, err)
	}
	res.Action = "merged"
	if !mr.Commit.IsZero() {
		res.Commit = mr.Commit.String()
	}
	return nil
}

func firstConflict(cs []branch.Conflict) string {
	if len(cs) == 0 {
		return "none listed"
	}
	return cs[0].Kind + " " + cs[0].Path
}

// fetchCommit fetches commit id and its tree's nodes (and with full, its data blocks) that are
// not stored locally, level by level so that each level costs a few ranged GETs. Subtrees
// whose root node is local are complete locally (except, in a lazy clone, for data blocks).
func (m *Manager) fetchCommit(ctx context.Context, remote string, b backends.Backend, id store.ID, full bool, t *tracker) (int64, error) {
	var fetched int64
	fetchMissing := func(ids []store.ID) error {
		var need []store.ID
		for _, id := range ids {
			ok, err := m.st.Has(ctx, id)
			if err != nil {
				return err
			}
			if !ok {
				need = append(need, id)
			}
		}
		fetched += int64(len(need))
		return m.fetchObjects(ctx, remote, b, need, t)
	}
	if err := fetchMissing([]store.ID{id}); err != nil {
		return fetched, err
	}
	c, err := m.e.ReadCommit(ctx, id)
	if err != nil {
		return fetched, err
	}
	level := []store.ID{c.Root}
	seen := map[store.ID]bool{}
	wantLevel := map[store.ID]int{} // a child sits one level below its parent
	for len(level) > 0 {
		var todo []store.ID
		for _, n := range level {
			if seen[n] {
				continue
			}
			seen[n] = true
			if !full {
				if ok, err := m.st.Has(ctx, n); err != nil {
					return fetched, err
				} else if ok {
					continue // complete locally
				}
			}
			todo = append(todo, n)
		}
		if err := fetchMissing(todo); err != nil {
			return fetched, err
		}
		var next, data []store.ID
		for _, n := range todo {
			want, checked := wantLevel[n]
			bad := false
			err := m.e.Tree().ReadNode(ctx, n, func(lvl int, k, v []byte) bool {
				if checked && lvl != want {
					bad = true
					return false
				}
				if lvl > 0 {
					wantLevel[store.ID(v)] = lvl - 1
					next = append(next, store.ID(v))
				} else if full && len(k) == 17 && k[0] == 'b' && len(v) == 32 {
					data = append(data, store.ID(v))
				}
				return true
			})
			if err == nil && bad {
				err = fmt.Errorf("%w: tree node %s is not at the level its parent says", ErrCorrupt, n)
			}
			if err != nil {
				return fetched, err
			}
		}
		if len(data) > 0 {
			if err := fetchMissing(data); err != nil {
				return fetched, err
			}
		}
		level = next
	}
	return fetched, nil
}

// CloneResult says what a clone did.
type CloneResult struct {
	Remote   string       `json:"remote"`
	URL      string       `json:"url"`
	Branches []PullResult `json:"branches"`
}

// Clone adds url as remote "origin" of this (new) repository and pulls the given branches
// (all of the remote's when none are given). It moves the repository's inode counter to a
// region of its own, so files created here never share inode numbers with files created on
// other hosts.
func (m *Manager) Clone(ctx context.Context, url string, branches []string, o PullOptions) (CloneResult, error) {
	res := CloneResult{Remote: "origin", URL: url}
	if _, err := m.Add(ctx, "origin", url, Security{KeyFiles: o.KeyFiles, Trust: o.Trust}); err != nil {
		return res, err
	}
	if err := m.e.UseOwnInodeRegion(); err != nil {
		return res, err
	}
	if len(branches) == 0 {
		all, err := m.Branches(ctx, "origin")
		if err != nil {
			return res, err
		}
		if len(all) == 0 {
			return res, fmt.Errorf("remote %s has no branches: %w", url, branch.ErrNotFound)
		}
		for name := range all {
			branches = append(branches, name)
		}
		sort.Strings(branches)
	}
	for _, br := range branches {
		pr, err := m.pull(ctx, "origin", br, o, true)
		if err != nil {
			return res, err
		}
		res.Branches = append(res.Branches, pr)
	}
	return res, nil
}
