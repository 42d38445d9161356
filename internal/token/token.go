// Package token keeps the capability tokens of a repository: bearer secrets that give an
// agent some rights on one branch (and optionally one path prefix of it), for a limited
// time. Only a SHA-256 hash of each secret is stored, in tokens.json in the repository
// directory (mode 0600); the secret is shown once, when it is made.
package token

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Rights a token can carry.
var Rights = []string{"read", "write", "checkpoint", "rollback", "fork", "merge-into", "push"}

// DefaultRights are given when none are asked for.
var DefaultRights = []string{"read", "write", "checkpoint"}

// ErrUnauthorized means a missing, malformed, unknown, expired or revoked token.
var ErrUnauthorized = errors.New("token refused")

// Token is the stored form of a token (its secret is not kept).
type Token struct {
	ID      string    `json:"id"`
	Hash    string    `json:"hash"` // hex SHA-256 of the whole token string
	Branch  string    `json:"branch"`
	Rights  []string  `json:"rights"`
	Path    string    `json:"path,omitempty"` // prefix inside the branch; "" is all of it
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires,omitzero"`
	Revoked bool      `json:"revoked,omitempty"`
	// ReadOther lets the token read checkpoints of other branches by id.
	ReadOther bool `json:"read_other,omitempty"`
}

// Has reports whether the token carries right.
func (t *Token) Has(right string) bool { return slices.Contains(t.Rights, right) }

// Store is the token file of one repository.
type Store struct{ path string }

// Open returns the store of the repository at dir.
func Open(dir string) *Store { return &Store{path: filepath.Join(dir, "tokens.json")} }

const prefix = "agentfs_"

// lock serialises changes across processes (the daemon reads, the CLI writes).
func (s *Store) lock() (func(), error) {
	f, err := os.OpenFile(s.path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// List returns every token, revoked and expired ones included.
func (s *Store) List() ([]Token, error) {
	b, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return []Token{}, nil
	}
	if err != nil {
		return nil, err
	}
	var ts []Token
	if err := json.Unmarshal(b, &ts); err != nil {
		return nil, fmt.Errorf("%s is damaged (%v); revoke everything by removing it", s.path, err)
	}
	return ts, nil
}

func (s *Store) write(ts []Token) error {
	b, err := json.MarshalIndent(ts, "", "  ")
	if err != nil {
		return err
	}
	tmp := s.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, s.path)
}

// CheckRights validates a list of rights.
func CheckRights(rights []string) error {
	for _, r := range rights {
		if !slices.Contains(Rights, r) {
			return fmt.Errorf("unknown right %q; rights are %s", r, strings.Join(Rights, ", "))
		}
	}
	return nil
}

// Create makes a token for branch with rights, limited to the path prefix, valid for ttl
// (0: no expiry). It returns the secret token string, which is not stored.
func (s *Store) Create(branch string, rights []string, path string, ttl time.Duration, readOther bool, now time.Time) (string, Token, error) {
	if len(rights) == 0 {
		rights = DefaultRights
	}
	if err := CheckRights(rights); err != nil {
		return "", Token{}, err
	}
	var idb [8]byte
	var secret [32]byte
	rand.Read(idb[:])
	rand.Read(secret[:])
	id := hex.EncodeToString(idb[:])
	str := prefix + id + "_" + base64.RawURLEncoding.EncodeToString(secret[:])
	t := Token{ID: id, Hash: hash(str), Branch: branch, Rights: rights, Path: path, Created: now.UTC(), ReadOther: readOther}
	if ttl > 0 {
		t.Expires = now.Add(ttl).UTC()
	}
	unlock, err := s.lock()
	if err != nil {
		return "", Token{}, err
	}
	defer unlock()
	ts, err := s.List()
	if err != nil {
		return "", Token{}, err
	}
	return str, t, s.write(append(ts, t))
}

// Revoke marks token id revoked; it is refused from then on.
func (s *Store) Revoke(id string) error {
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	ts, err := s.List()
	if err != nil {
		return err
	}
	for i := range ts {
		if ts[i].ID == id {
			ts[i].Revoked = true
			return s.write(ts)
		}
	}
	return fmt.Errorf("no token %s (see: agentfs token list)", id)
}

func hash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// Verify returns the token that str is, if it is valid at now. The file is read on every
// call, so that a revocation takes effect at once, also in a running daemon.
func (s *Store) Verify(str string, now time.Time) (*Token, error) {
	rest, ok := strings.CutPrefix(str, prefix)
	id, _, ok2 := strings.Cut(rest, "_")
	if !ok || !ok2 {
		return nil, fmt.Errorf("%w: not an agentfs token", ErrUnauthorized)
	}
	ts, err := s.List()
	if err != nil {
		return nil, err
	}
	h := hash(str)
	for i := range ts {
		t := &ts[i]
		if t.ID != id || subtle.ConstantTimeCompare([]byte(t.Hash), []byte(h)) != 1 {
			continue
		}
		switch {
		case t.Revoked:
			return nil, fmt.Errorf("%w: token %s was revoked", ErrUnauthorized, id)
		case !t.Expires.IsZero() && !now.Before(t.Expires):
			return nil, fmt.Errorf("%w: token %s expired at %s", ErrUnauthorized, id, t.Expires.Format(time.RFC3339))
		}
		return t, nil
	}
	return nil, fmt.Errorf("%w: unknown token", ErrUnauthorized)
}
