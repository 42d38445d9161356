package main

import "testing"

// TestMemoryLimit: the limit is the target while the live heap is small, never leaves the GC
// less than target/4 of headroom (so it cannot run without pause), and tends to twice the
// live heap (Go's own pacing) when the daemon needs much more than the target.
func TestMemoryLimit(t *testing.T) {
	const target = 192 << 20
	for live := int64(0); live <= 4<<30; live += 1 << 20 {
		l := memoryLimit(target, live)
		if live <= target/2 && l != target {
			t.Fatalf("live %d MiB: limit %d MiB, want the target", live>>20, l>>20)
		}
		if l-live < target/4 {
			t.Fatalf("live %d MiB: limit %d MiB leaves less than target/4 of headroom", live>>20, l>>20)
		}
		if l > 2*live && l > target {
			t.Fatalf("live %d MiB: limit %d MiB above both twice the live heap and the target", live>>20, l>>20)
		}
	}
}
