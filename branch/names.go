package branch

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNameLen bounds branch and checkpoint names.
const MaxNameLen = 128

// ValidateName checks a branch or checkpoint name. Names appear in refs (BRANCH@NAME), in
// paths and in shell commands, so they are kept to printable text without separators.
func ValidateName(kind, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: %s name is empty", ErrInvalidName, kind)
	case len(name) > MaxNameLen:
		return fmt.Errorf("%w: %s name is %d bytes long; the limit is %d", ErrInvalidName, kind, len(name), MaxNameLen)
	case name == "." || name == ".." || strings.Contains(name, ".."):
		return fmt.Errorf("%w: %s name %q may not contain \"..\"", ErrInvalidName, kind, name)
	case strings.ContainsAny(name, "/\\"):
		return fmt.Errorf("%w: %s name %q may not contain a slash", ErrInvalidName, kind, name)
	case strings.Contains(name, "@"):
		return fmt.Errorf("%w: %s name %q may not contain '@' (it separates BRANCH@CHECKPOINT)", ErrInvalidName, kind, name)
	case strings.Contains(name, ":"):
		return fmt.Errorf("%w: %s name %q may not contain ':' (it separates REF:PATH)", ErrInvalidName, kind, name)
	case strings.HasPrefix(name, "-"):
		return fmt.Errorf("%w: %s name %q may not start with '-'", ErrInvalidName, kind, name)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: %s name %q is not valid UTF-8", ErrInvalidName, kind, name)
	}
	for _, r := range name {
		if unicode.IsControl(r) || unicode.IsSpace(r) || r == unicode.ReplacementChar {
			return fmt.Errorf("%w: %s name %q may not contain spaces or control characters", ErrInvalidName, kind, name)
		}
		if invisible(r) {
			return fmt.Errorf("%w: %s name %q contains %U, an invisible, direction-changing, private-use or unassigned character", ErrInvalidName, kind, name, r)
		}
	}
	return nil
}

// invisible reports characters that make a name look like another one: format characters
// (Cf: bidirectional overrides such as U+202E, zero-width joiners), the other default-ignorable
// code points (variation selectors, Hangul fillers, ...), private-use and surrogate code
// points, and code points Unicode has not assigned (whose rendering nobody can predict).
// File names inside the filesystem are not checked: there any byte but '/' and NUL is valid.
func invisible(r rune) bool {
	return unicode.In(r, unicode.Cf, unicode.Co, unicode.Cs, unicode.Categories["Cn"],
		unicode.Other_Default_Ignorable_Code_Point, unicode.Variation_Selector)
}
