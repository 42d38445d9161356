package work

import (
	"fmt"
	"testing"
)

// TestOverlayIndexGrows: past the first filter's capacity the index chains larger filters;
// every key added is still found (no false negatives), and keys never added are mostly
// rejected (the Bloom filters' false positives stay near their 1%).
func TestOverlayIndexGrows(t *testing.T) {
	x := &overlayIndex{state: indexBuilt}
	const n = 100_000
	for i := range n {
		x.add(string(DirentKey(uint64(i), fmt.Sprint("name", i))))
	}
	if len(x.filters) < 4 {
		t.Fatalf("%d keys in %d filters: the chain did not grow", n, len(x.filters))
	}
	for i := range n {
		if k := DirentKey(uint64(i), fmt.Sprint("name", i)); !x.mayContain(k) {
			t.Fatalf("key %d added but not found", i)
		}
	}
	fp := 0
	for i := range n {
		if x.mayContain(DirentKey(uint64(i), fmt.Sprint("other", i))) {
			fp++
		}
	}
	if rate := float64(fp) / n; rate > 0.08 {
		t.Fatalf("%.1f%% of absent keys pass the filters (want a few %%)", 100*rate)
	}
	t.Logf("%d keys, %d filters, %d false positives in %d absent keys", n, len(x.filters), fp, n)
	x.invalidate()
	if x.state != indexUnknown || x.filters != nil {
		t.Fatal("invalidate kept the filters")
	}
}
