package main

import "testing"

// TestMemoryLimit: the limit is the target while the live heap and the runtime's other
// memory are small; it always leaves the heap at least max(target/4, live/4) above the live
// heap beyond the runtime's fixed memory (so the GC cannot run without pause, as it did when
// fixed memory was not counted); it tends to twice the live heap (Go's own pacing) when the
// daemon needs much more than the target.
func TestMemoryLimit(t *testing.T) {
	const target = 192 << 20
	for _, fixed := range []int64{0, 20 << 20, 150 << 20, 1 << 30} {
		for live := int64(0); live <= 4<<30; live += 1 << 20 {
			l := memoryLimit(target, live, fixed)
			if live <= target/2 && fixed <= target/4 && l != target {
				t.Fatalf("live %d MiB, fixed %d MiB: limit %d MiB, want the target", live>>20, fixed>>20, l>>20)
			}
			if room := l - live - fixed; room < max(target/4, live/4) {
				t.Fatalf("live %d MiB, fixed %d MiB: limit %d MiB leaves the heap %d MiB of headroom", live>>20, fixed>>20, l>>20, room>>20)
			}
			if l > 2*live && l > target && l > fixed+live+max(target/4, live/4) {
				t.Fatalf("live %d MiB, fixed %d MiB: limit %d MiB above what any rule asks", live>>20, fixed>>20, l>>20)
			}
		}
	}
}
