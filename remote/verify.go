package remote

import (
	"context"
	"errors"
	"fmt"

	"github.com/agentfs/agentfs/branch"
	"github.com/agentfs/agentfs/store"
)

// reached is an object reachable from a commit, with where it sits (for reports).
type reached struct {
	id     store.ID
	kind   byte
	commit store.ID // the commit whose tree holds it
	root   store.ID // that tree's root
	key    []byte   // data: its tree key; tree node: its first key (nil for a root node)
}

// walkReachable visits commit head, its ancestors and every tree node and data block of
// their trees, each once, a parent before its children (commits before their trees, tree
// nodes top-down). stop(c) ends the history at commit c (c itself is not visited). Commits
// and nodes are read from the local store or, through the fetcher, from a remote that lists
// them (a commit is read before it is visited). visit returning false skips the object's children. An object that cannot be read
// goes to broken; a nil return continues the walk. A parent commit that can be read nowhere
// ends that line of history (a host may push commits whose older history it never had).
//
// Bucket content is not trusted: a child must sit exactly one level below its parent, so the
// walk ends after at most 64 levels whatever the nodes say.
func (m *Manager) walkReachable(ctx context.Context, head store.ID, stop func(store.ID) bool,
	visit func(r reached) bool, broken func(r reached, err error) error) error {
	seen := map[store.ID]bool{}
	commits := []store.ID{head}
	type item struct {
		r     reached
		level int // expected level; -1 = any (a root)
	}
	for len(commits) > 0 {
		cid := commits[0]
		commits = commits[1:]
		if seen[cid] || (stop != nil && stop(cid)) {
			continue
		}
		seen[cid] = true
		cr := reached{id: cid, kind: KindCommit, commit: cid}
		c, err := m.e.ReadCommit(ctx, cid)
		if err != nil {
			if cid != head && errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err := broken(cr, err); err != nil {
				return err
			}
			continue
		}
		if !visit(cr) {
			continue
		}
		commits = append(commits, c.Parents...)
		if c.Root.IsZero() {
			continue
		}
		stack := []item{{reached{id: c.Root, kind: KindMeta, commit: cid, root: c.Root}, -1}}
		for len(stack) > 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			it := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if seen[it.r.id] {
				continue
			}
			seen[it.r.id] = true
			if !visit(it.r) {
				continue
			}
			if it.r.kind == KindData {
				continue
			}
			var kids []item
			bad := false
			err := m.e.Tree().ReadNode(ctx, it.r.id, func(level int, k, v []byte) bool {
				if it.level >= 0 && level != it.level {
					bad = true
					return false
				}
				base := reached{commit: cid, root: c.Root, key: k}
				if level > 0 {
					base.id, base.kind = store.ID(v), KindMeta
					kids = append(kids, item{base, level - 1})
				} else if len(k) == 17 && k[0] == 'b' && len(v) == 32 {
					base.id, base.kind = store.ID(v), KindData
					kids = append(kids, item{base, 0})
				}
				return true
			})
			if err == nil && bad {
				err = fmt.Errorf("%w: tree node %s is not at the level its parent says", ErrCorrupt, it.r.id)
			}
			if err != nil {
				if err := broken(it.r, err); err != nil {
					return err
				}
				continue
			}
			// Reverse, so that the stack pops them in order.
			for i := len(kids) - 1; i >= 0; i-- {
				stack = append(stack, kids[i])
			}
		}
	}
	return nil
}

// unconfirmed lists the objects reachable from head that the remote's index (as cached; the
// caller refreshes it first) does not list, in walk order. History ends at remoteHead: the
// remote ref names it, so everything it reaches is there already (docs/format.md). Nothing
// the remote lacks is skipped, and the whole tree of every new commit is read.
func (m *Manager) unconfirmed(ctx context.Context, remote string, head, remoteHead store.ID) ([]object, error) {
	var out []object
	var err error
	werr := m.walkReachable(ctx, head, func(c store.ID) bool { return c == remoteHead },
		func(r reached) bool {
			has, e := m.has(remote, r.id)
			if e != nil {
				err = e
				return false
			}
			if !has {
				out = append(out, object{r.id, r.kind})
			}
			return true
		},
		func(r reached, e error) error {
			return fmt.Errorf("push: %s %s: %w", kindName(r.kind), r.id, e)
		})
	return out, errors.Join(werr, err)
}

func kindName(k byte) string {
	switch k {
	case KindCommit:
		return string(branch.ObjCommit)
	case KindMeta:
		return string(branch.ObjTree)
	}
	return string(branch.ObjData)
}
