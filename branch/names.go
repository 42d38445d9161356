package branch

import (
	"fmt"
	"strings"
	"unicode"
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
	for _, r := range name {
		if unicode.IsControl(r) || unicode.IsSpace(r) || r == unicode.ReplacementChar {
			return fmt.Errorf("%w: %s name %q may not contain spaces or control characters", ErrInvalidName, kind, name)
		}
	}
	return nil
}
