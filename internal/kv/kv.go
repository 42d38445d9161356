// Package kv holds the small Pebble helpers the packages sharing the repository's database
// (branch, remote) all need.
package kv

import (
	"bytes"
	"errors"

	"github.com/cockroachdb/pebble/v2"
)

// Get returns a copy of the value of k, and whether it exists.
func Get(r pebble.Reader, k []byte) ([]byte, bool, error) {
	v, closer, err := r.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := bytes.Clone(v)
	closer.Close()
	return out, true, nil
}

// PrefixEnd returns the smallest key greater than every key with prefix p (nil if none).
func PrefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
