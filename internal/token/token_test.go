package token

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A token verifies until it expires or is revoked; only its hash is on disk; a forged or
// truncated token is refused.
func TestTokenLifecycle(t *testing.T) {
	dir := t.TempDir()
	s := Open(dir)
	now := time.Unix(1000, 0)
	str, tok, err := s.Create("a", nil, "src", time.Hour, false, now)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(tok.Rights, ",") != "read,write,checkpoint" || tok.Path != "src" {
		t.Fatalf("token %+v", tok)
	}
	got, err := s.Verify(str, now.Add(time.Minute))
	if err != nil || got.ID != tok.ID || got.Branch != "a" {
		t.Fatalf("verify: %+v %v", got, err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "tokens.json"))
	if strings.Contains(string(raw), str[len(str)-20:]) {
		t.Fatal("the secret is stored in clear")
	}
	if st, _ := os.Stat(filepath.Join(dir, "tokens.json")); st.Mode().Perm() != 0o600 {
		t.Fatalf("tokens.json mode %v", st.Mode())
	}
	for name, bad := range map[string]string{"empty": "", "truncated": str[:len(str)-1], "forged": str[:len(str)-2] + "xx", "other id": "agentfs_0000000000000000_" + str[len("agentfs_")+17:]} {
		if _, err := s.Verify(bad, now); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := s.Verify(str, now.Add(time.Hour)); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("expired: %v", err)
	}
	if err := s.Revoke(tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(str, now); !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("revoked: %v", err)
	}
	if err := s.Revoke("nope"); err == nil {
		t.Fatal("revoking an unknown id")
	}
	if _, _, err := s.Create("a", []string{"read", "root"}, "", 0, false, now); err == nil {
		t.Fatal("unknown right accepted")
	}
}
