package branch

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/agentfs/agentfs/store"
)

// Tags name checkpoints independently of branches: 'T' + name -> commit id. A tag outlives
// the branch its checkpoint was taken on, is a garbage-collection root (so gc keeps its tree
// and history) and is never pruned. Refs resolve a branch name first, then a tag.
const pfxTag = 'T'

// Kinds of the garbage-collection roots this file adds (see Roots).
const (
	RootTag   RootKind = "tag"   // a tagged checkpoint
	RootMerge RootKind = "merge" // the source of a merge waiting for --continue
)

func tagKey(name string) []byte { return append([]byte{pfxTag}, name...) }

// Tag is a named checkpoint.
type Tag struct {
	Name   string
	Commit store.ID
}

// CreateTag names ref's checkpoint (for a branch with uncommitted changes, a new checkpoint
// of them that does not move the branch).
func (e *Engine) CreateTag(ctx context.Context, name, ref string) (store.ID, error) {
	defer e.op()()
	if err := ValidateName("tag", name); err != nil {
		return store.ID{}, err
	}
	if _, err := e.GetBranch(name); err == nil {
		return store.ID{}, fmt.Errorf("%w: a branch is called %s, and a branch name wins in refs; choose another tag name", ErrExists, name)
	}
	r, err := e.Resolve(ctx, ref)
	if err != nil {
		return store.ID{}, err
	}
	id, err := e.commitOf(ctx, r, "tag "+name)
	if err != nil {
		return store.ID{}, err
	}
	defer e.lockTag(name)()
	if _, ok, err := e.getKey(tagKey(name)); err != nil {
		return store.ID{}, err
	} else if ok {
		return store.ID{}, fmt.Errorf("tag %s %w (delete it first: agentfs tag delete %s)", name, ErrExists, name)
	}
	return id, e.st.Durable(func() error { return e.db.Set(tagKey(name), id[:], pebble.Sync) })
}

// DeleteTag removes a tag; its checkpoint stays until gc finds nothing else refers to it.
func (e *Engine) DeleteTag(name string) error {
	defer e.lockTag(name)()
	if _, ok, err := e.getKey(tagKey(name)); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("tag %q: %w (see: agentfs tag list)", name, ErrNotFound)
	}
	return e.st.Durable(func() error { return e.db.Delete(tagKey(name), pebble.Sync) })
}

// Tags lists the tags by name.
func (e *Engine) Tags() ([]Tag, error) {
	var out []Tag
	err := scanPrefix(e.db, []byte{pfxTag}, func(k, v []byte) error {
		if len(v) != len(store.ID{}) {
			return fmt.Errorf("tag %q: malformed record", k[1:])
		}
		out = append(out, Tag{Name: string(k[1:]), Commit: store.ID(v)})
		return nil
	})
	return out, err
}

// tagCommit returns the checkpoint tagged name, if there is such a tag.
func (e *Engine) tagCommit(name string) (store.ID, bool, error) {
	v, ok, err := e.getKey(tagKey(name))
	if err != nil || !ok || len(v) != len(store.ID{}) {
		return store.ID{}, false, err
	}
	return store.ID(v), true, nil
}

// reviewRoots appends the roots this package's review features add: tags, and the source
// commits of pending merges.
func (e *Engine) reviewRoots(r pebble.Reader, out []Root) ([]Root, error) {
	if err := scanPrefix(r, []byte{pfxTag}, func(k, v []byte) error {
		if len(v) != len(store.ID{}) {
			return fmt.Errorf("tag %q: malformed record", k[1:])
		}
		out = append(out, Root{Kind: RootTag, Name: string(k[1:]), Commit: store.ID(v)})
		return nil
	}); err != nil {
		return nil, err
	}
	err := scanPrefix(r, []byte{pfxPending}, func(k, v []byte) error {
		var p PendingMerge
		if err := json.Unmarshal(v, &p); err != nil {
			return fmt.Errorf("pending merge of %s: malformed record: %w", k[1:], err)
		}
		out = append(out, Root{Kind: RootMerge, Branch: string(k[1:]), Name: p.Source, Commit: p.SourceCommit})
		return nil
	})
	return out, err
}
