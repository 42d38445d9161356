package branch

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/agentfs/agentfs/store"
)

// TestCheckpointProvenance: a checkpoint keeps its provenance and the counts of what changed
// since its parent, and both survive a reopen of the repository.
func TestCheckpointProvenance(t *testing.T) {
	ctx := context.Background()
	e := openEngine(t)
	e.CreateBranch(ctx, "main", "")
	ws, _ := e.Workspace(ctx, "main")
	writeFile(t, ws, RootIno, "edit", []byte("before"))
	writeFile(t, ws, RootIno, "gone", []byte("x"))
	if _, err := e.Checkpoint(ctx, "main", "", ""); err != nil {
		t.Fatal(err)
	}
	writeFile(t, ws, RootIno, "edit", []byte("after"))
	ws.Unlink(ctx, RootIno, "gone")
	writeFile(t, ws, RootIno, "new1", []byte("n"))
	writeFile(t, ws, RootIno, "new2", []byte("n"))
	p := Provenance{Agent: "x", Session: "s1", ToolCall: "tc-42", Caller: "token:abc", Via: "mcp", Labels: map[string]string{"exit": "0", "k": "v"}}
	id, changes, err := e.CheckpointWith(ctx, "main", CheckpointOptions{Message: "m", Provenance: p})
	if err != nil {
		t.Fatal(err)
	}
	want := FileCounts{Created: 2, Modified: 1, Deleted: 1}
	if got := CountChanges(changes); got != want {
		t.Fatalf("changes %v counted %+v, want %+v", changes, got, want)
	}
	e = reopenEngine(t, e)
	c, err := e.ReadCommit(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Provenance, p) || c.Files != want || c.Message != "m" {
		t.Fatalf("read back %+v %+v, want %+v %+v", c.Provenance, c.Files, p, want)
	}
	// Bad provenance is refused before anything is written.
	long := make([]byte, maxProvField+1)
	for _, bad := range []Provenance{{Agent: string(long)}, {Labels: map[string]string{"a b": "v"}}, {Labels: map[string]string{"": "v"}}} {
		if _, _, err := e.CheckpointWith(ctx, "main", CheckpointOptions{Provenance: bad}); !errors.Is(err, ErrInvalidName) {
			t.Fatalf("provenance %+v: err %v, want invalid", bad, err)
		}
	}
}

// TestCommitVersion1StillDecodes: commits written before provenance existed (version 1) read
// back with their fields and empty provenance.
func TestCommitVersion1StillDecodes(t *testing.T) {
	var root, parent store.ID
	root[0], parent[0] = 1, 2
	b := []byte{'C', 1}
	b = append(b, root[:]...)
	b = binary.AppendUvarint(b, 1)
	b = append(b, parent[:]...)
	b = binary.AppendVarint(b, 1234)
	for _, s := range []string{"main", "cp", "hello"} {
		b = appendString(b, s)
	}
	c, err := decodeCommit(b)
	if err != nil {
		t.Fatal(err)
	}
	if c.Root != root || len(c.Parents) != 1 || c.Parents[0] != parent || c.Branch != "main" || c.Name != "cp" || c.Message != "hello" ||
		!reflect.DeepEqual(c.Provenance, Provenance{}) || c.Files != (FileCounts{}) {
		t.Fatalf("decoded %+v", c)
	}
}

// TestHostileCommits: truncated, bit-flipped and random commits decode to an error or to a
// commit, never a panic, and a declared length or label count beyond the bytes present or the
// limits is refused without allocating it. AGENTFS_COMMIT_SEED replays a run.
func TestHostileCommits(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("AGENTFS_COMMIT_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (AGENTFS_COMMIT_SEED replays)", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	good := encodeCommit(&Commit{Parents: []store.ID{{1}}, Time: time.Unix(5, 0), Branch: "b", Message: "m",
		Provenance: Provenance{Agent: "a", Labels: map[string]string{"k": "v", "x": "y"}}, Files: FileCounts{1, 2, 3}})
	if _, err := decodeCommit(good); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(good); i++ {
		if _, err := decodeCommit(good[:i]); err == nil {
			t.Fatalf("a commit cut to %d of %d bytes decoded", i, len(good))
		}
	}
	for i := 0; i < 20000; i++ {
		b := append([]byte(nil), good...)
		for n := r.IntN(4) + 1; n > 0; n-- {
			b[r.IntN(len(b))] ^= byte(1 << r.IntN(8))
		}
		decodeCommit(b) // must not panic
	}
	// A huge label count and a huge string length, in an otherwise valid prefix.
	head := encodeCommit(&Commit{Branch: "b"})
	head = head[:len(head)-(5+1+3)] // drop the empty trailer: 5 empty strings, 0 labels, 3 zero counts
	for _, tail := range [][]byte{
		binary.AppendUvarint(append([]byte{}, 0, 0, 0, 0, 0), 1<<62),   // labels
		binary.AppendUvarint(append([]byte{}, 0, 0, 0, 0), 1<<40),      // via length
		append(binary.AppendUvarint([]byte{0, 0, 0, 0, 0}, 1), 200, 1), // label key longer than the rest
	} {
		if _, err := decodeCommit(append(append([]byte{}, head...), tail...)); err == nil {
			t.Fatalf("trailer %x decoded", tail)
		}
	}
}
