package tree

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

	"github.com/agentfs/agentfs/store"
)

// countingBlocks counts the Puts that reach the store, to check copy-on-write costs.
type countingBlocks struct {
	*store.Store
	puts int
}

func (c *countingBlocks) Put(ctx context.Context, data []byte) (store.ID, error) {
	c.puts++
	return c.Store.Put(ctx, data)
}

func openBlocks(t testing.TB) *countingBlocks {
	s, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &countingBlocks{Store: s}
}

func key(i int) []byte { return fmt.Appendf(nil, "k%08d", i) }

// checkTree compares every way of reading the tree with the model.
func checkTree(t *testing.T, tr *Tree, root store.ID, model map[string]string) {
	t.Helper()
	ctx := context.Background()
	keys := make([]string, 0, len(model))
	for k := range model {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var got []string
	if err := tr.Scan(ctx, root, nil, nil, func(k, v []byte) error {
		if model[string(k)] != string(v) {
			t.Fatalf("scan: key %q = %q, want %q", k, v, model[string(k)])
		}
		got = append(got, string(k))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, keys) {
		t.Fatalf("scan returned %d keys, model has %d", len(got), len(keys))
	}
	for _, k := range keys[:min(len(keys), 50)] {
		v, ok, err := tr.Get(ctx, root, []byte(k))
		if err != nil || !ok || string(v) != model[k] {
			t.Fatalf("get %q = %q %v %v, want %q", k, v, ok, err, model[k])
		}
	}
	if _, ok, _ := tr.Get(ctx, root, []byte("zz-missing")); ok {
		t.Fatal("missing key found")
	}
	// Iteration from the middle starts at the first key >= start.
	if len(keys) > 0 {
		mid := keys[len(keys)/2]
		it := tr.NewIter(ctx, root, []byte(mid))
		if !it.Next() || string(it.Key()) != mid {
			t.Fatalf("iter from %q starts at %q", mid, it.Key())
		}
	}
}

func TestApplyMatchesModel(t *testing.T) {
	ctx := context.Background()
	tr := New(openBlocks(t), 256)
	rng := rand.New(rand.NewPCG(1, 2))
	model := map[string]string{}
	var root store.ID
	for round := 0; round < 60; round++ {
		mset := map[string]Mutation{}
		n := rng.IntN(2000) + 1
		for i := 0; i < n; i++ {
			k := key(rng.IntN(20000))
			if rng.IntN(3) == 0 {
				mset[string(k)] = Mutation{Key: k, Delete: true}
			} else {
				mset[string(k)] = Mutation{Key: k, Value: bytes.Repeat([]byte{byte(rng.IntN(256))}, rng.IntN(200))}
			}
		}
		muts := make([]Mutation, 0, len(mset))
		for _, m := range mset {
			muts = append(muts, m)
			if m.Delete {
				delete(model, string(m.Key))
			} else {
				model[string(m.Key)] = string(m.Value)
			}
		}
		sort.Slice(muts, func(i, j int) bool { return bytes.Compare(muts[i].Key, muts[j].Key) < 0 })
		old := root
		var err error
		if root, err = tr.Apply(ctx, root, muts); err != nil {
			t.Fatal(err)
		}
		checkTree(t, tr, root, model)
		// Diff against the previous version reports exactly the effective mutations.
		want := 0
		oldModel := map[string]bool{}
		_ = tr.Scan(ctx, old, nil, nil, func(k, v []byte) error { oldModel[string(k)] = true; return nil })
		for _, m := range muts {
			if m.Delete && !oldModel[string(m.Key)] {
				continue
			}
			want++ // may overcount a put of an identical value; checked below
		}
		got := 0
		if err := tr.Diff(ctx, old, root, func(k, va, vb []byte) error {
			if vb == nil {
				if _, ok := model[string(k)]; ok {
					t.Fatalf("diff says %q deleted", k)
				}
			} else if model[string(k)] != string(vb) {
				t.Fatalf("diff new value of %q wrong", k)
			}
			got++
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if got > want {
			t.Fatalf("diff reported %d changes, at most %d happened", got, want)
		}
	}
	// Delete everything: the empty tree is the zero root.
	var muts []Mutation
	for k := range model {
		muts = append(muts, Mutation{Key: []byte(k), Delete: true})
	}
	sort.Slice(muts, func(i, j int) bool { return bytes.Compare(muts[i].Key, muts[j].Key) < 0 })
	root, err := tr.Apply(ctx, root, muts)
	if err != nil || !root.IsZero() {
		t.Fatalf("deleting every key left root %v, err %v", root, err)
	}
}

// A single change in a large tree rewrites only the path to it, and a diff reads only it.
func TestCopyOnWriteCost(t *testing.T) {
	ctx := context.Background()
	b := openBlocks(t)
	tr := New(b, 1<<16)
	var muts []Mutation
	for i := 0; i < 200000; i++ {
		muts = append(muts, Mutation{Key: key(i), Value: []byte("value-of-some-length-0123456789")})
	}
	root, err := tr.Apply(ctx, store.ID{}, muts)
	if err != nil {
		t.Fatal(err)
	}
	built := b.puts
	b.puts = 0
	root2, err := tr.Apply(ctx, root, []Mutation{{Key: key(123456), Value: []byte("changed")}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	_ = tr.Walk(ctx, root2, func(id store.ID, level int, leaf func(func(k, v []byte) bool)) error {
		if level > 0 {
			n++
		}
		return nil
	})
	depth := 0
	_ = tr.Walk(ctx, root2, func(id store.ID, level int, _ func(func(k, v []byte) bool)) error {
		depth = max(depth, level+1)
		return nil
	})
	if b.puts > depth {
		t.Fatalf("one change wrote %d nodes; tree depth is %d (building it wrote %d)", b.puts, depth, built)
	}
	var changes []string
	if err := tr.Diff(ctx, root, root2, func(k, va, vb []byte) error {
		changes = append(changes, string(k))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || changes[0] != string(key(123456)) {
		t.Fatalf("diff = %v", changes)
	}
}

func FuzzDecodeNode(f *testing.F) {
	f.Add(encodeNode(0, []entry{{key: []byte("a"), value: []byte("1")}, {key: []byte("ab"), value: nil}}))
	f.Add(encodeNode(1, []entry{{key: []byte("a"), value: make([]byte, 32)}}))
	f.Add([]byte("T\x01\x00\x01\x00\x01a\x01b"))
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := decodeNode(data)
		if err != nil {
			return
		}
		// Whatever decodes must survive a re-encode unchanged.
		m, err := decodeNode(encodeNode(n.level, n.entries))
		if err != nil || m.level != n.level || len(m.entries) != len(n.entries) {
			t.Fatalf("re-encoded node does not decode the same: %v", err)
		}
		for i := range m.entries {
			if !bytes.Equal(m.entries[i].key, n.entries[i].key) || !bytes.Equal(m.entries[i].value, n.entries[i].value) {
				t.Fatalf("entry %d differs after re-encoding", i)
			}
		}
	})
}
