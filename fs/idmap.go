package fs

import (
	"fmt"
	"strconv"
	"strings"
)

// IDMap maps identities between the repository and one mount, so that an agent running as
// a non-root user owns the files the repository stores as root's, and what it creates is
// stored as root's: its work checkpoints and merges with no ownership change.
//
// The map swaps two ids in each direction (stored 0 <-> shown UID, stored UID <-> shown 0),
// so it is a bijection: chown through the mount and back never loses an owner. Every other
// id passes through unchanged.
type IDMap struct {
	UID, GID uint32
}

// ParseIDMap parses "UID:GID" (numbers, as in docker --user).
func ParseIDMap(s string) (*IDMap, error) {
	u, g, ok := strings.Cut(s, ":")
	if !ok {
		return nil, fmt.Errorf("owner %q: want UID:GID in numbers, e.g. --owner 1000:1000", s)
	}
	uid, err1 := strconv.ParseUint(u, 10, 32)
	gid, err2 := strconv.ParseUint(g, 10, 32)
	if err1 != nil || err2 != nil || uid == 1<<32-1 || gid == 1<<32-1 {
		return nil, fmt.Errorf("owner %q: want UID:GID in numbers, e.g. --owner 1000:1000", s)
	}
	return &IDMap{UID: uint32(uid), GID: uint32(gid)}, nil
}

// String returns "UID:GID".
func (m *IDMap) String() string { return fmt.Sprintf("%d:%d", m.UID, m.GID) }

func swap(id, a uint32) uint32 {
	switch id {
	case 0:
		return a
	case a:
		return 0
	}
	return id
}

func (m *IDMap) shownUID(stored uint32) uint32 {
	if m == nil {
		return stored
	}
	return swap(stored, m.UID)
}

func (m *IDMap) shownGID(stored uint32) uint32 {
	if m == nil {
		return stored
	}
	return swap(stored, m.GID)
}

// The swap is its own inverse.
func (m *IDMap) storedUID(shown uint32) uint32 { return m.shownUID(shown) }
func (m *IDMap) storedGID(shown uint32) uint32 { return m.shownGID(shown) }
