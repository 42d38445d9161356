package diff3

import "bytes"

// Marker lines, as git writes them.
const (
	MarkerOurs   = "<<<<<<<"
	MarkerSep    = "======="
	MarkerTheirs = ">>>>>>>"
)

// MergeMarkers merges like Merge, but writes each region both sides changed differently as
// a git-style conflict (<<<<<<< ours, =======, >>>>>>> theirs) and returns how many there
// are. Texts too far apart to match line by line give one conflict of the whole texts.
func MergeMarkers(base, ours, theirs []byte, oursLabel, theirsLabel string) ([]byte, int) {
	o, a, b := splitLines(base), splitLines(ours), splitLines(theirs)
	ma, ok1 := match(o, a)
	mb, ok2 := match(o, b)
	var out bytes.Buffer
	conflicts := 0
	conflict := func(ca, cb [][]byte) {
		conflicts++
		out.WriteString(MarkerOurs + " " + oursLabel + "\n")
		writeBlock(&out, ca)
		out.WriteString(MarkerSep + "\n")
		writeBlock(&out, cb)
		out.WriteString(MarkerTheirs + " " + theirsLabel + "\n")
	}
	if !ok1 || !ok2 {
		conflict(a, b)
		return out.Bytes(), conflicts
	}
	lo, la, lb := 0, 0, 0
	for {
		for lo < len(o) && ma[lo] == la && mb[lo] == lb {
			out.Write(o[lo])
			lo, la, lb = lo+1, la+1, lb+1
		}
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
			writeLines(&out, cb)
		case equal(cb, co), equal(ca, cb):
			writeLines(&out, ca)
		default:
			conflict(ca, cb)
		}
		lo, la, lb = next, ea, eb
		if lo == len(o) && la == len(a) && lb == len(b) {
			break
		}
	}
	return out.Bytes(), conflicts
}

func writeLines(out *bytes.Buffer, lines [][]byte) {
	for _, l := range lines {
		out.Write(l)
	}
}

// writeBlock writes the lines of one side of a conflict, ending in a newline so that the
// marker after it has a line of its own.
func writeBlock(out *bytes.Buffer, lines [][]byte) {
	writeLines(out, lines)
	if out.Len() > 0 && out.Bytes()[out.Len()-1] != '\n' {
		out.WriteByte('\n')
	}
}

// HasMarkers reports whether text still holds a conflict written by MergeMarkers: a line
// starting with "<<<<<<< " and a later one starting with ">>>>>>> ".
func HasMarkers(text []byte) bool {
	i := lineStart(text, MarkerOurs+" ")
	return i >= 0 && lineStart(text[i:], MarkerTheirs+" ") >= 0
}

func lineStart(text []byte, prefix string) int {
	for off := 0; off < len(text); {
		if bytes.HasPrefix(text[off:], []byte(prefix)) {
			return off
		}
		nl := bytes.IndexByte(text[off:], '\n')
		if nl < 0 {
			return -1
		}
		off += nl + 1
	}
	return -1
}
