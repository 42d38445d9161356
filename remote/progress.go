package remote

import (
	"sort"
	"sync"
)

// Progress describes a remote operation in flight. The CLI polls it (also through the
// daemon) to draw a progress line on a terminal.
type Progress struct {
	ID     int    `json:"id"`
	Op     string `json:"op"` // push, pull, clone
	Remote string `json:"remote"`
	Branch string `json:"branch"`
	Phase  string `json:"phase"` // index, walk, upload, fetch, ref
	Done   int64  `json:"done"`  // units of the phase done (objects or index files)
	Total  int64  `json:"total"` // 0 = unknown
	Bytes  int64  `json:"bytes"` // bytes moved in the phase
}

// tracker is the live Progress of one operation; nil-safe.
type tracker struct {
	mu sync.Mutex
	p  Progress
}

func (t *tracker) set(phase string, done, total int64) {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.p.Phase, t.p.Done, t.p.Total, t.p.Bytes = phase, done, total, 0
	t.mu.Unlock()
}

func (t *tracker) add(n, bytes int64) {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.p.Done += n
	t.p.Bytes += bytes
	t.mu.Unlock()
}

func (m *Manager) begin(op, remote, br string) (*tracker, func()) {
	m.progMu.Lock()
	defer m.progMu.Unlock()
	m.progNext++
	t := &tracker{p: Progress{ID: m.progNext, Op: op, Remote: remote, Branch: br}}
	m.progress[t.p.ID] = t
	return t, func() {
		m.progMu.Lock()
		delete(m.progress, t.p.ID)
		m.progMu.Unlock()
	}
}

// InFlight returns the progress of the operations running now.
func (m *Manager) InFlight() []Progress {
	m.progMu.Lock()
	defer m.progMu.Unlock()
	out := make([]Progress, 0, len(m.progress))
	for _, t := range m.progress {
		t.mu.Lock()
		out = append(out, t.p)
		t.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
