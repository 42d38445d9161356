package branch

import (
	"errors"
	"testing"
)

// Branch and checkpoint names refuse characters that make one name look like another.
func TestValidateNameRefusesInvisible(t *testing.T) {
	bad := map[string]string{
		"rlo":         "agent\u202Eexe.txt", // right-to-left override (Cf)
		"lri":         "a\u2066b",           // left-to-right isolate (Cf)
		"zwsp":        "a\u200Bb",           // zero-width space (Cf)
		"zwj":         "a\u200Db",           // zero-width joiner (Cf)
		"bom":         "\uFEFFmain",         // byte order mark (Cf)
		"soft-hyphen": "ma\u00ADin",         // Cf
		"tag":         "a\U000E0041",        // tag character (Cf)
		"vs16":        "a\uFE0F",            // variation selector
		"hangul-fill": "a\u3164b",           // default-ignorable, letter category
		"cgj":         "a\u034Fb",           // combining grapheme joiner, default-ignorable
		"private-use": "a\uE000b",
		"plane-15":    "a\U000F0000b",
		"unassigned":  "a\U0003FFFDb", // unassigned in plane 3
		"nonchar":     "a\uFDD0b",     // noncharacter: unassigned
		"bad-utf8":    "a\xffb",
		"surrogate":   "a\xed\xa0\x80b", // UTF-8 encoded surrogate: invalid UTF-8
		"nbsp":        "a\u00A0b",
	}
	for what, name := range bad {
		for _, kind := range []string{"branch", "checkpoint"} {
			if err := ValidateName(kind, name); !errors.Is(err, ErrInvalidName) {
				t.Errorf("%s %s name %q: got %v, want ErrInvalidName", what, kind, name, err)
			}
		}
	}
	for _, good := range []string{"main", "agent-1", "feature_x.y", "résumé", "日本語", "émoji-🚀", "Ωmega"} {
		if err := ValidateName("branch", good); err != nil {
			t.Errorf("%q: %v", good, err)
		}
	}
}
