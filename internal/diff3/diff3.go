// Package diff3 merges two edited versions of a text with their common ancestor, line by
// line, as diff3 and git merge-file do: regions changed on one side only are taken from that
// side; regions changed on both sides conflict unless both made the same change.
package diff3

import (
	"bytes"
	"unicode/utf8"
)

// MaxEdits bounds the edit distance the line diff explores (its memory grows with its
// square); texts further apart are reported as a conflict.
const MaxEdits = 4000

// IsText reports whether b looks like text: valid UTF-8 without NUL bytes, as git decides.
func IsText(b []byte) bool {
	return bytes.IndexByte(b[:min(len(b), 8000)], 0) < 0 && utf8.Valid(b)
}

// Merge returns the merged text and whether it is clean. When it is not, the result is nil.
func Merge(base, ours, theirs []byte) ([]byte, bool) {
	o, a, b := splitLines(base), splitLines(ours), splitLines(theirs)
	ma, ok1 := match(o, a)
	mb, ok2 := match(o, b)
	if !ok1 || !ok2 {
		return nil, false
	}
	var out [][]byte
	lo, la, lb := 0, 0, 0
	for {
		// Copy the stable lines: unchanged in both versions.
		for lo < len(o) && ma[lo] == la && mb[lo] == lb {
			out = append(out, o[lo])
			lo, la, lb = lo+1, la+1, lb+1
		}
		// Find the next base line that both versions kept.
		next := lo
		for next < len(o) && (ma[next] < 0 || mb[next] < 0) {
			next++
		}
		ea, eb := len(a), len(b)
		if next < len(o) {
			ea, eb = ma[next], mb[next]
		}
		if next == lo && ea == la && eb == lb {
			if lo == len(o) {
				break
			}
			continue
		}
		co, ca, cb := o[lo:next], a[la:ea], b[lb:eb]
		switch {
		case equal(ca, co):
			out = append(out, cb...)
		case equal(cb, co), equal(ca, cb):
			out = append(out, ca...)
		default:
			return nil, false
		}
		lo, la, lb = next, ea, eb
		if lo == len(o) && la == len(a) && lb == len(b) {
			break
		}
	}
	return bytes.Join(out, nil), true
}

// splitLines splits after every newline, keeping it, so that joining restores the text.
func splitLines(b []byte) [][]byte {
	var lines [][]byte
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			lines = append(lines, b)
			break
		}
		lines = append(lines, b[:i+1])
		b = b[i+1:]
	}
	return lines
}

func equal(x, y [][]byte) bool {
	if len(x) != len(y) {
		return false
	}
	for i := range x {
		if !bytes.Equal(x[i], y[i]) {
			return false
		}
	}
	return true
}

// match computes a longest common subsequence of x and y with Myers' O(ND) algorithm and
// returns, for every line of x, the index of its partner in y or -1. It gives up (false)
// beyond MaxEdits edits; the saved frontiers cost O(D^2) memory.
func match(x, y [][]byte) ([]int, bool) {
	n, m := len(x), len(y)
	out := make([]int, n)
	for i := range out {
		out[i] = -1
	}
	limit := n + m
	off := limit + 1
	v := make([]int, 2*limit+3)
	var trace [][]int // trace[d]: v[k] for k in [-d-1, d+1], as it was before step d
	done := false
	for d := 0; d <= limit && !done; d++ {
		if d > MaxEdits {
			return nil, false
		}
		trace = append(trace, append([]int(nil), v[off-d-1:off+d+2]...))
		for k := -d; k <= d; k += 2 {
			var xi int
			if k == -d || (k != d && v[off+k-1] < v[off+k+1]) {
				xi = v[off+k+1]
			} else {
				xi = v[off+k-1] + 1
			}
			yi := xi - k
			for xi < n && yi < m && bytes.Equal(x[xi], y[yi]) {
				xi, yi = xi+1, yi+1
			}
			v[off+k] = xi
			if xi >= n && yi >= m {
				done = true
				break
			}
		}
	}
	// Walk back from the end, recording the diagonal moves (matched lines).
	xi, yi := n, m
	for d := len(trace) - 1; d >= 0; d-- {
		at := func(k int) int { return trace[d][k+d+1] }
		k := xi - yi
		var pk int
		if k == -d || (k != d && at(k-1) < at(k+1)) {
			pk = k + 1
		} else {
			pk = k - 1
		}
		px := at(pk)
		py := px - pk
		for xi > px && yi > py && xi > 0 && yi > 0 {
			xi, yi = xi-1, yi-1
			out[xi] = yi
		}
		xi, yi = px, py
	}
	return out, true
}
