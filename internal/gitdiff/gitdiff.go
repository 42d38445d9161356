// Package gitdiff renders file changes as git-style unified diffs, which `git apply` and
// GNU `patch -p1` accept: file headers with modes, renames and binary markers, and hunks
// with a given number of context lines. The line matching is go-udiff's (a port of the Go
// tools' diff: Myers' algorithm with a bound on the search, so a huge edit costs a less
// minimal diff rather than quadratic time).
package gitdiff

import (
	"crypto/sha1"
	"fmt"
	"strings"
	"syscall"

	"github.com/aymanbagabas/go-udiff/lcs"
)

// Lines splits text after every newline, keeping it; a last line without one is kept too.
func Lines(text []byte) []string {
	var out []string
	s := string(text)
	for len(s) > 0 {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			out = append(out, s)
			break
		}
		out = append(out, s[:i+1])
		s = s[i+1:]
	}
	return out
}

// Edit replaces the lines [Start, End) of the old text with the lines [NewStart, NewEnd)
// of the new one.
type Edit struct{ Start, End, NewStart, NewEnd int }

// Diff returns the edits that turn lines a into lines b, in order.
func Diff(a, b []string) []Edit {
	ds := lcs.DiffLines(a, b)
	out := make([]Edit, len(ds))
	for i, d := range ds {
		out[i] = Edit{d.Start, d.End, d.ReplStart, d.ReplEnd}
	}
	return out
}

// Hunks writes the hunks turning a into b with context lines around each change, and
// returns the numbers of added and deleted lines.
func Hunks(sb *strings.Builder, a, b []string, context int) (added, deleted int) {
	edits := Diff(a, b)
	for i := 0; i < len(edits); {
		// A hunk takes edits while the unchanged gap between them is at most 2*context.
		j := i + 1
		for j < len(edits) && edits[j].Start-edits[j-1].End <= 2*context {
			j++
		}
		first, last := edits[i], edits[j-1]
		os := max(0, first.Start-context)
		oe := min(len(a), last.End+context)
		ns := first.NewStart - (first.Start - os)
		ne := last.NewEnd + (oe - last.End)
		fmt.Fprintf(sb, "@@ -%s +%s @@\n", span(os, oe-os), span(ns, ne-ns))
		at := os
		for _, e := range edits[i:j] {
			for ; at < e.Start; at++ {
				line(sb, ' ', a[at])
			}
			for k := e.Start; k < e.End; k++ {
				line(sb, '-', a[k])
			}
			for k := e.NewStart; k < e.NewEnd; k++ {
				line(sb, '+', b[k])
			}
			deleted += e.End - e.Start
			added += e.NewEnd - e.NewStart
			at = e.End
		}
		for ; at < oe; at++ {
			line(sb, ' ', a[at])
		}
		i = j
	}
	return added, deleted
}

// span formats a hunk range: 1-based start and count; a count of 1 is left out, and an
// empty range names the line before it.
func span(start, count int) string {
	switch count {
	case 0:
		return fmt.Sprintf("%d,0", start)
	case 1:
		return fmt.Sprint(start + 1)
	}
	return fmt.Sprintf("%d,%d", start+1, count)
}

func line(sb *strings.Builder, op byte, s string) {
	sb.WriteByte(op)
	sb.WriteString(s)
	if !strings.HasSuffix(s, "\n") {
		sb.WriteString("\n\\ No newline at end of file\n")
	}
}

// Mode returns the mode git records for st_mode: 100644 or 100755 for regular files,
// 120000 for symlinks, 040000 for directories; 0 for other types, which git cannot record.
func Mode(mode uint32) uint32 {
	switch mode & syscall.S_IFMT {
	case syscall.S_IFREG:
		if mode&0o100 != 0 {
			return 0o100755
		}
		return 0o100644
	case syscall.S_IFLNK:
		return 0o120000
	case syscall.S_IFDIR:
		return 0o040000
	}
	return 0
}

// BlobID returns git's abbreviated object id of content, for the index line.
func BlobID(content []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(content))
	h.Write(content)
	return fmt.Sprintf("%x", h.Sum(nil))[:7]
}

// File is one file's change. An added file has no OldPath, a deleted one no NewPath.
type File struct {
	OldPath, NewPath string
	OldMode, NewMode uint32 // st_mode of each side (0 when absent)
	Old, New         []byte
	Binary           bool // content is not shown, only marked as differing
}

// Write appends f as a git diff and returns its added and deleted line counts.
func Write(sb *strings.Builder, f File, context int) (added, deleted int) {
	oldName, newName := f.OldPath, f.NewPath
	if oldName == "" {
		oldName = newName
	}
	if newName == "" {
		newName = oldName
	}
	fmt.Fprintf(sb, "diff --git %s %s\n", quote("a/"+oldName), quote("b/"+newName))
	om, nm := Mode(f.OldMode), Mode(f.NewMode)
	switch {
	case f.OldPath == "":
		fmt.Fprintf(sb, "new file mode %06o\n", nm)
	case f.NewPath == "":
		fmt.Fprintf(sb, "deleted file mode %06o\n", om)
	default:
		if om != nm {
			fmt.Fprintf(sb, "old mode %06o\nnew mode %06o\n", om, nm)
		}
		if f.OldPath != f.NewPath {
			fmt.Fprintf(sb, "similarity index %d%%\nrename from %s\nrename to %s\n",
				similarity(f), quote(f.OldPath), quote(f.NewPath))
		}
	}
	sameContent := string(f.Old) == string(f.New) && f.OldPath != "" && f.NewPath != ""
	if sameContent {
		return 0, 0
	}
	oldID, newID := "0000000", "0000000"
	if f.OldPath != "" {
		oldID = BlobID(f.Old)
	}
	if f.NewPath != "" {
		newID = BlobID(f.New)
	}
	if f.OldPath != "" && f.NewPath != "" && om == nm {
		fmt.Fprintf(sb, "index %s..%s %06o\n", oldID, newID, nm)
	} else {
		fmt.Fprintf(sb, "index %s..%s\n", oldID, newID)
	}
	from, to := "/dev/null", "/dev/null"
	if f.OldPath != "" {
		from = quote("a/" + f.OldPath)
	}
	if f.NewPath != "" {
		to = quote("b/" + f.NewPath)
	}
	if f.Binary {
		fmt.Fprintf(sb, "Binary files %s and %s differ\n", from, to)
		return 0, 0
	}
	if len(f.Old) == 0 && len(f.New) == 0 {
		return 0, 0 // an empty file added or deleted: the header says it all
	}
	fmt.Fprintf(sb, "--- %s\n+++ %s\n", from, to)
	return Hunks(sb, Lines(f.Old), Lines(f.New), context)
}

// similarity is the share of the old lines kept, in percent, as git reports for renames.
func similarity(f File) int {
	if string(f.Old) == string(f.New) {
		return 100
	}
	a, b := Lines(f.Old), Lines(f.New)
	if len(a) == 0 || f.Binary {
		return 0
	}
	kept := len(a)
	for _, e := range Diff(a, b) {
		kept -= e.End - e.Start
	}
	return kept * 100 / max(len(a), len(b))
}

// quote writes a path as git does: in double quotes with C escapes when it holds a quote,
// a backslash, a control character or a non-ASCII byte.
func quote(p string) string {
	need := false
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			need = true
			break
		}
	}
	if !need {
		return p
	}
	var sb strings.Builder
	sb.WriteByte('"')
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '"', '\\':
			sb.WriteByte('\\')
			sb.WriteByte(c)
		case '\n':
			sb.WriteString(`\n`)
		case '\t':
			sb.WriteString(`\t`)
		default:
			if c < 0x20 || c >= 0x7f {
				fmt.Fprintf(&sb, `\%03o`, c)
			} else {
				sb.WriteByte(c)
			}
		}
	}
	sb.WriteByte('"')
	return sb.String()
}
