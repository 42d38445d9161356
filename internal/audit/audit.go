// Package audit keeps the audit log of a repository: one JSON line per control operation
// (who, when, what, arguments, result), each carrying the SHA-256 of the line before it, so
// that editing or removing a line breaks the chain and Verify finds it.
package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"
)

// Entry is one line.
type Entry struct {
	Time   time.Time       `json:"time"`
	Who    string          `json:"who"`              // uid:N or token:ID
	What   string          `json:"what"`             // the call, e.g. checkpoint, mount
	Branch string          `json:"branch,omitempty"` // the branch it names, if any
	Args   json.RawMessage `json:"args,omitempty"`
	Result string          `json:"result"` // "ok", or the error
	Status int             `json:"status"` // HTTP status of the call
	Prev   string          `json:"prev"`   // hex SHA-256 of the previous line ("" for the first)
}

// Log appends to one file. Appends from several processes are serialised by a lock on the
// file, and each reads the last line again, so the chain holds across the daemon and the CLI.
type Log struct{ path string }

// Open returns the log at path (created on first append).
func Open(path string) *Log { return &Log{path: path} }

// maxLine bounds a line: arguments beyond it are cut (file contents are never logged).
const maxLine = 16 << 10

func lineHash(line []byte) string {
	h := sha256.Sum256(line)
	return hex.EncodeToString(h[:])
}

// lastLine returns the last line of f (without its newline).
func lastLine(f *os.File) ([]byte, error) {
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return nil, err
	}
	n := min(st.Size(), 4*maxLine)
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, st.Size()-n); err != nil && err != io.EOF {
		return nil, err
	}
	buf = bytes.TrimSuffix(buf, []byte("\n"))
	if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
		buf = buf[i+1:]
	}
	return buf, nil
}

// Append writes e as the next line.
func (l *Log) Append(e Entry) error {
	if len(e.Args) > maxLine/2 {
		e.Args, _ = json.Marshal(map[string]any{"truncated": true, "bytes": len(e.Args)})
	}
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	last, err := lastLine(f)
	if err != nil {
		return err
	}
	if len(last) > 0 {
		e.Prev = lineHash(last)
	}
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	return err
}

// Filter selects entries.
type Filter struct {
	Since  time.Time
	Branch string
}

// Read returns the entries matching f, oldest first.
func Read(path string, f Filter) ([]Entry, error) {
	out := []Entry{}
	err := scan(path, func(n int, line []byte) error {
		var e Entry
		if err := json.Unmarshal(line, &e); err != nil {
			return fmt.Errorf("%s line %d is not an audit entry: %v", path, n, err)
		}
		if (!f.Since.IsZero() && e.Time.Before(f.Since)) || (f.Branch != "" && e.Branch != f.Branch) {
			return nil
		}
		out = append(out, e)
		return nil
	})
	return out, err
}

// ErrBroken means the chain does not hold: a line was edited, removed or inserted.
var ErrBroken = errors.New("audit log chain is broken")

// Verify checks the chain and returns the number of lines.
func Verify(path string) (int, error) {
	prev, count := "", 0
	err := scan(path, func(n int, line []byte) error {
		var e Entry
		if err := json.Unmarshal(line, &e); err != nil {
			return fmt.Errorf("%w at line %d: not an audit entry", ErrBroken, n)
		}
		if e.Prev != prev {
			return fmt.Errorf("%w at line %d: it does not follow line %d (a line was edited, removed or inserted there)", ErrBroken, n, n-1)
		}
		prev, count = lineHash(line), n
		return nil
	})
	return count, err
}

func scan(path string, fn func(n int, line []byte) error) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4*maxLine)
	for n := 1; sc.Scan(); n++ {
		if err := fn(n, sc.Bytes()); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%w: %v", ErrBroken, err)
	}
	return nil
}
