package store

import (
	"errors"
	"fmt"
	"log"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/cockroachdb/pebble/v2"
)

// Damage (issue 13): a flipped byte in one of the database's files must give one line that
// says what is damaged, where, and what to do, not Pebble's multi-line report with a stack.

// ErrDamaged is wrapped by every DamageError.
var ErrDamaged = errors.New("repository damaged")

// DamageError names a damaged file of the database.
type DamageError struct {
	Kind string // sstable, blob file, manifest, write-ahead log, database
	Path string // the file, or the database directory when the file is not known
	Why  string // Pebble's reason, first line only
}

func (e *DamageError) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("damaged: %s: run 'agentfs fsck' to see what is lost, 'agentfs fsck --repair' to recover", e.Kind)
	}
	return fmt.Sprintf("damaged: %s %s: run 'agentfs fsck' to see what is lost, 'agentfs fsck --repair' to recover", e.Kind, e.Path)
}

func (e *DamageError) Unwrap() error { return ErrDamaged }

var damagedFile = regexp.MustCompile(`[^\s:;,()\[\]]*(\d{6}\.(sst|blob|log)|MANIFEST-\d+)`)

// kindOf names a database file's kind for people.
func kindOf(path string) string {
	switch {
	case strings.HasSuffix(path, ".sst"):
		return "sstable"
	case strings.HasSuffix(path, ".blob"):
		return "blob file"
	case strings.HasSuffix(path, ".log"):
		return "write-ahead log"
	case strings.Contains(filepath.Base(path), "MANIFEST"):
		return "manifest"
	}
	return "database"
}

// AsDamage returns err as a *DamageError when it reports damaged data (a Pebble corruption
// error, or a database that does not open because its files disagree), else nil. dir is the
// database directory, named when the damaged file is not known.
func AsDamage(err error, dir string) *DamageError {
	if err == nil {
		return nil
	}
	var de *DamageError
	if errors.As(err, &de) {
		return de
	}
	if errors.Is(err, ErrRemoteCorrupt) {
		return nil // the bucket's content is bad, not the database
	}
	why := firstLine(err.Error())
	if info := pebble.ExtractDataCorruptionInfo(err); info != nil {
		return &DamageError{Kind: kindOf(info.Path), Path: info.Path, Why: why}
	}
	corrupt := pebble.IsCorruptionError(err) || errors.Is(err, pebble.ErrCorruption)
	if !corrupt && errors.Is(err, ErrCorrupt) {
		// A block that failed its hash check (here, or read from a bucket) names itself;
		// the database is not damaged, and advice to repair it would be wrong (a crafted
		// bucket must not lead anyone to move their database aside).
		return nil
	}
	msg := err.Error()
	// A damaged manifest often decodes into references to files that do not exist.
	missing := strings.Contains(msg, "unknown to the objstorage provider") ||
		strings.Contains(msg, "MANIFEST") && !errors.Is(err, syscall.ENOSPC)
	for _, s := range []string{"checksum mismatch", "invalid chunk", "zeroed chunk", "corrupt", "bad magic", "invalid table"} {
		corrupt = corrupt || strings.Contains(msg, s)
	}
	if !corrupt && !missing {
		return nil
	}
	if m := damagedFile.FindString(msg); m != "" && !strings.Contains(msg, "unknown to the objstorage provider") {
		if !filepath.IsAbs(m) && !strings.Contains(m, "/") && dir != "" {
			m = filepath.Join(dir, m)
		}
		return &DamageError{Kind: kindOf(m), Path: m, Why: why}
	}
	if missing && dir != "" {
		if m, _ := filepath.Glob(filepath.Join(dir, "MANIFEST-*")); len(m) > 0 {
			return &DamageError{Kind: "manifest", Path: m[len(m)-1], Why: why}
		}
	}
	return &DamageError{Kind: "database", Path: dir, Why: why}
}

// Describe returns err as one line: a DamageError for damaged data, else err itself.
func Describe(err error, dir string) error {
	if de := AsDamage(err, dir); de != nil {
		return de
	}
	return err
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// reported holds the damaged paths already reported in this process (by any store's logger;
// a command may open the database more than once), so that each damage is one line.
var (
	reported    sync.Map
	anyReported atomic.Bool
)

// reportOnce prints de unless it was reported already; a damage that names no file (the
// database as a whole) is not reported after one that named the file.
func reportOnce(l *log.Logger, de *DamageError) {
	if de.Kind == "database" && anyReported.Load() {
		return
	}
	if _, dup := reported.LoadOrStore(de.Path, true); !dup {
		anyReported.Store(true)
		l.Print(de.Error())
	}
}

// Reported says whether err is a damage this process already reported on its log (main
// then does not print it again).
func Reported(err error) bool {
	var de *DamageError
	if errors.As(err, &de) {
		if _, ok := reported.Load(de.Path); ok {
			return true
		}
		return de.Kind == "database" && anyReported.Load()
	}
	// The same, come back as the text of a control call's error.
	msg := err.Error()
	if !strings.HasPrefix(msg, "damaged: ") {
		return false
	}
	found := strings.HasPrefix(msg, "damaged: database") && anyReported.Load()
	reported.Range(func(k, _ any) bool {
		found = found || strings.Contains(msg, k.(string)+":")
		return !found
	})
	return found
}

// pebbleLogger drops Pebble's informational chatter (tests open many stores) and sends its
// errors to the store's logger, one line each; a damaged file is reported once.
type pebbleLogger struct {
	l   *log.Logger
	dir string
}

func (*pebbleLogger) Infof(string, ...any) {}

func (p *pebbleLogger) Errorf(format string, args ...any) {
	err := fmt.Errorf(format, args...)
	if de := AsDamage(err, p.dir); de != nil {
		reportOnce(p.l, de)
		return
	}
	p.l.Print("pebble: " + firstLine(err.Error()))
}

func (p *pebbleLogger) Fatalf(format string, args ...any) {
	err := fmt.Errorf(format, args...)
	if de := AsDamage(err, p.dir); de != nil {
		p.l.Fatal(de.Error())
	}
	p.l.Fatalf("pebble: %s", firstLine(err.Error()))
}

func (p *pebbleLogger) corruption(info pebble.DataCorruptionInfo) {
	reportOnce(p.l, &DamageError{Kind: kindOf(info.Path), Path: info.Path})
}
