package fs

import (
	"sync"
	"syscall"
)

// errSeq records write errors per inode, like Linux's errseq_t: a failed write, truncate or
// fsync of a file is reported once to every descriptor open on it, at that descriptor's next
// fsync and at its close (FLUSH), even when the call that failed reported it already.
// Nothing acknowledged is lost by a failure (every write reached the write-ahead log before
// it returned), so a report says "something after your last check failed", never "your
// data is gone".
type errSeq struct {
	mu   sync.Mutex
	errs map[uint64]seqErr
}

type seqErr struct {
	seq uint64
	err syscall.Errno
}

// set records err for ino.
func (s *errSeq) set(ino uint64, err syscall.Errno) {
	if err == 0 || err == syscall.EINTR || err == syscall.ESTALE {
		return // not a failure of the file: nothing later should report it
	}
	s.mu.Lock()
	if s.errs == nil {
		s.errs = map[uint64]seqErr{}
	}
	e := s.errs[ino]
	s.errs[ino] = seqErr{e.seq + 1, err}
	s.mu.Unlock()
}

// sample returns the current sequence of ino, for a descriptor opening it.
func (s *errSeq) sample(ino uint64) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.errs[ino].seq
}

// check returns the error recorded for ino since *since and advances *since.
func (s *errSeq) check(ino uint64, since *uint64) syscall.Errno {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.errs[ino]
	if e.seq == *since {
		return 0
	}
	*since = e.seq
	return e.err
}

// forget drops the record of an inode no descriptor has open.
func (s *errSeq) forget(ino uint64) {
	s.mu.Lock()
	delete(s.errs, ino)
	s.mu.Unlock()
}
