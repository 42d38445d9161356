package branch

import (
	"bytes"

	"github.com/cockroachdb/pebble/v2"
)

// BranchState is a branch with whether its working overlay holds changes.
type BranchState struct {
	*Branch
	Changed bool
}

// BranchStates lists all branches sorted by name, each with whether it has changes since its
// base. It opens no workspace and reads one ref and seeks one overlay per branch, so that
// listing a fleet of branches costs O(branches) whatever their trees and histories hold.
func (e *Engine) BranchStates() ([]BranchState, error) {
	bs, err := e.Branches()
	if err != nil {
		return nil, err
	}
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: []byte{pfxOverlay}, UpperBound: []byte{pfxOverlay + 1}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	out := make([]BranchState, len(bs))
	for i, b := range bs {
		p := overlayPrefix(b.ID)
		out[i] = BranchState{Branch: b, Changed: it.SeekGE(p) && bytes.HasPrefix(it.Key(), p)}
	}
	return out, it.Error()
}
