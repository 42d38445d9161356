package remote

// Signed refs (docs/format.md, "Signed refs"). A repository with a signing key
// (REPO/signing.key, made by agentfs keygen) signs every ref it pushes: the branch name, the
// head commit id and the ref's time, with ed25519. The commit id is a hash that covers the
// commit's tree and its parents, so one signature vouches for the whole version and its
// history. Pull and clone with trusted keys refuse a ref that is unsigned, signed by another
// key, or whose signature does not match what it names.

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/agentfs/agentfs/branch"
	"github.com/agentfs/agentfs/store"
)

// SigningKeyFile is the repository's signing key (PKCS #8 PEM, mode 0600) in its directory.
const SigningKeyFile = "signing.key"

// ErrBadKey: a public key given to trust is malformed.
var ErrBadKey = errors.New("bad public key")

// ErrUntrusted: a ref is unsigned, signed by a key not trusted, or its signature is wrong.
var ErrUntrusted = errors.New("untrusted")

// signPrefix separates ref signatures from any other use of the key.
const signPrefix = "agentfs signed ref v1\x00"

const pubPrefix = "ed25519:"

// PublicKeyString is how agentfs prints a public key: "ed25519:" and its base64.
func PublicKeyString(pub ed25519.PublicKey) string {
	return pubPrefix + base64.StdEncoding.EncodeToString(pub)
}

// ParsePublicKey reads what PublicKeyString wrote.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	k, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(strings.TrimSpace(s), pubPrefix))
	if !strings.HasPrefix(strings.TrimSpace(s), pubPrefix) || err != nil || len(k) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: %q is not a public key (agentfs keygen prints one: ed25519:BASE64)", ErrBadKey, s)
	}
	return ed25519.PublicKey(k), nil
}

func parseTrust(list []string) ([]ed25519.PublicKey, error) {
	var out []ed25519.PublicKey
	for _, s := range list {
		k, err := ParsePublicKey(s)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

// Keygen creates the signing key of the repository at dir and returns its public key. An
// existing key is kept (and its public key returned) unless force.
func Keygen(dir string, force bool) (string, bool, error) {
	path := filepath.Join(dir, SigningKeyFile)
	if !force {
		if k, err := readSigningKey(path); err != nil || k != nil {
			if k != nil {
				return PublicKeyString(k.Public().(ed25519.PublicKey)), false, nil
			}
			return "", false, err
		}
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", false, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", false, err
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return "", false, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", false, err
	}
	return PublicKeyString(pub), true, nil
}

// readSigningKey reads a signing key; nil when the file does not exist.
func readSigningKey(path string) (ed25519.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(data)
	if blk == nil {
		return nil, fmt.Errorf("%s is not a PEM private key; make a new one with agentfs keygen --force", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	priv, ok := k.(ed25519.PrivateKey)
	if err != nil || !ok {
		return nil, fmt.Errorf("%s is not an ed25519 private key; make a new one with agentfs keygen --force", path)
	}
	return priv, nil
}

// signingKey is the repository's signing key, nil when it has none.
func (m *Manager) signingKey() (ed25519.PrivateKey, error) {
	if m.o.Dir == "" {
		return nil, nil
	}
	return readSigningKey(filepath.Join(m.o.Dir, SigningKeyFile))
}

// signedBytes is what a ref's signature covers: the prefix, the branch name and a NUL (a
// branch name holds no NUL), the 32-byte commit id, the ref's time in Unix nanoseconds
// (8 bytes, big-endian).
func signedBytes(br string, commit store.ID, t time.Time) []byte {
	b := append([]byte(signPrefix), br...)
	b = append(b, 0)
	b = append(b, commit[:]...)
	return binary.BigEndian.AppendUint64(b, uint64(t.UnixNano()))
}

// encodeRef is the content of refs/heads/<br> naming head: JSON, signed when the repository
// has a signing key, sealed in an encrypted remote.
func (m *Manager) encodeRef(ring *keyRing, br string, head store.ID) ([]byte, *SignInfo, error) {
	rec := refRecord{Commit: head.String(), Time: time.Now().UTC(), Host: m.o.Host}
	key, err := m.signingKey()
	if err != nil {
		return nil, nil, err
	}
	var si *SignInfo
	if key != nil {
		rec.Signer = PublicKeyString(key.Public().(ed25519.PublicKey))
		rec.Sig = base64.StdEncoding.EncodeToString(ed25519.Sign(key, signedBytes(br, head, rec.Time)))
		si = &SignInfo{Signer: rec.Signer, Branch: br, Time: rec.Time}
	}
	data, _ := json.Marshal(rec)
	return ring.sealWhole("ref", br, data), si, nil
}

// verifyRef checks the signature of a ref naming head. With no trusted keys, an unsigned
// ref passes (and so does a bad signature, which is not recorded); with trusted keys it must
// be signed by one of them. It returns who signed, if anyone verifiably did.
func verifyRef(remote, br string, rec refRecord, head store.ID, trust []ed25519.PublicKey) (*SignInfo, error) {
	var pub ed25519.PublicKey
	var sig []byte
	var bad error
	if rec.Sig == "" {
		bad = untrustedf("remote %s: branch %s is not signed, and this repository accepts only branches signed by its trusted keys (--trust)", remote, br)
	} else if k, err := ParsePublicKey(rec.Signer); err != nil {
		bad = untrustedf("remote %s: branch %s names no valid signing key", remote, br)
	} else if sig, err = base64.StdEncoding.DecodeString(rec.Sig); err != nil || !ed25519.Verify(k, signedBytes(br, head, rec.Time), sig) {
		bad = untrustedf("remote %s: the signature of branch %s does not match it (the ref was changed after it was signed)", remote, br)
	} else {
		pub = k
	}
	if bad != nil {
		if len(trust) > 0 {
			return nil, bad
		}
		return nil, nil
	}
	if len(trust) > 0 {
		found := false
		for _, t := range trust {
			found = found || t.Equal(pub)
		}
		if !found {
			return nil, untrustedf("remote %s: branch %s is signed by %s, which is not a trusted key (--trust)", remote, br, PublicKeyString(pub))
		}
	}
	return &SignInfo{Signer: PublicKeyString(pub), Remote: remote, Branch: br, Time: rec.Time}, nil
}

func untrustedf(format string, a ...any) error {
	return &tagged{ErrUntrusted, fmt.Sprintf(format, a...)}
}

// SignInfo says who signed a ref that named a checkpoint.
type SignInfo struct {
	Signer string    `json:"signer"`           // public key
	Remote string    `json:"remote,omitempty"` // where the signed ref was read or written
	Branch string    `json:"branch"`
	Time   time.Time `json:"time"` // the ref's time
}

// signKey is where a checkpoint's signature record is kept: 'X' 0 's' commit (remote names
// are never empty, so 'X' 0 is no remote's prefix).
func signKey(id store.ID) []byte { return append([]byte{branch.PrefixRemote, 0, 's'}, id[:]...) }

func (m *Manager) recordSigner(id store.ID, si *SignInfo) error {
	if si == nil {
		return nil
	}
	v, _ := json.Marshal(si)
	return m.db.Set(signKey(id), v, pebble.NoSync)
}

// Signer returns who signed a ref naming checkpoint id, as this repository saw it (pushed it,
// or verified it on pull or clone).
func (m *Manager) Signer(id store.ID) (*SignInfo, error) {
	v, ok, err := m.getKey(signKey(id))
	if err != nil || !ok {
		return nil, err
	}
	var si SignInfo
	if json.Unmarshal(v, &si) != nil {
		return nil, nil
	}
	return &si, nil
}
