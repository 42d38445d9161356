package remote

// Client-side encryption of a remote (docs/format.md, "Encrypted remotes").
//
// A remote is encrypted when its format marker (agentfs.json, version 2) says so. Everything
// agentfs writes there then is sealed with XChaCha20-Poly1305 under keys derived from a
// 32-byte master key (given as a key file, or derived from a passphrase with Argon2id using
// the salt and parameters kept in the marker):
//
//   - each object inside a pack on its own (so a lazy read is still one ranged GET), bound to
//     its block id by the AEAD's associated data, so an entry moved or swapped is refused;
//   - index objects whole (their entries, which hold block ids, are never visible), bound to
//     the pack's name;
//   - refs and leases whole, bound to their branch or key.
//
// Packs are named by a keyed BLAKE3 hash of their (sealed) bytes instead of a plain hash.
// Every sealed thing starts with the 8-byte id of the key that sealed it, so a key ring of
// old keys keeps old data readable after a rotation, and a wrong key is told apart from
// tampering.
//
// The nil *keyRing is a plaintext remote: every method then reads and writes the version 1
// format unchanged.

import (
	"bytes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"unicode"

	"github.com/zeebo/blake3"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/agentfs/agentfs/store"
)

// ErrKey: a remote's key is missing or is not the one its data was sealed with.
var ErrKey = errors.New("remote key")

// tagged is an error whose message is its own (one line for the user) and that matches a
// sentinel with errors.Is.
type tagged struct {
	sentinel error
	msg      string
}

func (e *tagged) Error() string        { return e.msg }
func (e *tagged) Is(target error) bool { return target == e.sentinel }

func keyErrorf(format string, a ...any) error { return &tagged{ErrKey, fmt.Sprintf(format, a...)} }

const (
	keyIDLen   = 8
	nonceLen   = chacha20poly1305.NonceSizeX
	tagLen     = chacha20poly1305.Overhead
	entryExtra = keyIDLen + nonceLen + tagLen // bytes a sealed pack entry adds
	adPrefix   = "agentfs remote v1\x00"
)

// sealMagic starts every sealed whole object (ref, index, lease).
var sealMagic = []byte("AFSE\x01")

// packMagicSealed starts a pack whose entries are sealed.
var packMagicSealed = []byte("AFPK\x02")

// dataKey is one master key's derived keys.
type dataKey struct {
	id   [keyIDLen]byte
	aead cipher.AEAD
	name []byte // key of the keyed hash that names packs
}

func deriveKey(master []byte) (*dataKey, error) {
	sub := func(info string, n int) []byte {
		k, err := hkdf.Key(sha256.New, master, nil, "agentfs remote v1: "+info, n)
		if err != nil {
			panic(err) // only for lengths hkdf cannot produce; ours are fixed
		}
		return k
	}
	aead, err := chacha20poly1305.NewX(sub("object encryption", chacha20poly1305.KeySize))
	if err != nil {
		return nil, err
	}
	k := &dataKey{aead: aead, name: sub("object names", 32)}
	copy(k.id[:], sub("key id", keyIDLen))
	return k, nil
}

// keyRing holds a remote's keys: keys[0] seals new data, all of them open old data.
type keyRing struct {
	remote string
	env    string // the environment variable that would give the key (for messages)
	keys   []*dataKey
}

func (r *keyRing) current() *dataKey { return r.keys[0] }

func (r *keyRing) find(id []byte) *dataKey {
	for _, k := range r.keys {
		if bytes.Equal(k.id[:], id) {
			return k
		}
	}
	return nil
}

func (r *keyRing) ids() string {
	var s []string
	for _, k := range r.keys {
		s = append(s, hex.EncodeToString(k.id[:]))
	}
	return strings.Join(s, ", ")
}

func (r *keyRing) wrongKey(id []byte) error {
	return keyErrorf("remote %s holds data sealed with key %x, and the key given (%s) is not it: give the right key with --key-file FILE or %s", r.remote, id, r.ids(), r.env)
}

func ad(purpose string, name []byte) []byte {
	return append([]byte(adPrefix+purpose+"\x00"), name...)
}

// seal appends keyid | nonce | AEAD(plain) to dst.
func (k *dataKey) seal(dst, plain, ad []byte) []byte {
	dst = append(dst, k.id[:]...)
	nonce := make([]byte, nonceLen)
	if _, err := rand.Read(nonce); err != nil {
		panic(err) // crypto/rand does not fail on supported systems
	}
	dst = append(dst, nonce...)
	return k.aead.Seal(dst, nonce, plain, ad)
}

// open opens keyid | nonce | ciphertext; what names the thing opened for messages.
func (r *keyRing) open(v, ad []byte, what string) ([]byte, error) {
	if len(v) < entryExtra {
		return nil, fmt.Errorf("%w: %s: too short to be sealed", ErrCorrupt, what)
	}
	k := r.find(v[:keyIDLen])
	if k == nil {
		return nil, r.wrongKey(v[:keyIDLen])
	}
	out, err := k.aead.Open(nil, v[keyIDLen:keyIDLen+nonceLen], v[keyIDLen+nonceLen:], ad)
	if err != nil {
		return nil, fmt.Errorf("%w: %s fails its authentication check (changed in the bucket, or moved from elsewhere)", ErrCorrupt, what)
	}
	return out, nil
}

// encodeObject appends the stored form of block id (content data) to a pack.
func (r *keyRing) encodeObject(dst []byte, id store.ID, data []byte) []byte {
	if r == nil {
		return encodeObject(dst, data)
	}
	return r.current().seal(dst, encodeObject(nil, data), ad("object", id[:]))
}

// decodeObject returns the content of a pack entry and checks it against id.
func (r *keyRing) decodeObject(id store.ID, v []byte) ([]byte, error) {
	if r == nil {
		return decodeObject(id, v)
	}
	plain, err := r.open(v, ad("object", id[:]), "object "+id.String())
	if err != nil {
		return nil, err
	}
	return decodeObject(id, plain)
}

// sealWhole seals a whole object (purpose "ref", "index", "lease") bound to name.
func (r *keyRing) sealWhole(purpose, name string, plain []byte) []byte {
	if r == nil {
		return plain
	}
	return r.current().seal(bytes.Clone(sealMagic), plain, ad(purpose, []byte(name)))
}

// openWhole opens what sealWhole wrote.
func (r *keyRing) openWhole(purpose, name string, v []byte) ([]byte, error) {
	if r == nil {
		if bytes.HasPrefix(v, sealMagic) {
			return nil, keyErrorf("%s %s is encrypted, and no key is set for this remote", purpose, name)
		}
		return v, nil
	}
	if !bytes.HasPrefix(v, sealMagic) {
		return nil, fmt.Errorf("%w: %s %s is not encrypted, in an encrypted remote", ErrCorrupt, purpose, name)
	}
	return r.open(v[len(sealMagic):], ad(purpose, []byte(name)), purpose+" "+name)
}

// packMagic is the start of a new pack.
func (r *keyRing) packMagic() []byte {
	if r == nil {
		return packMagic
	}
	return packMagicSealed
}

// packName names a pack: the BLAKE3 hash of its bytes, keyed in an encrypted remote.
func (r *keyRing) packName(pack []byte) store.ID {
	if r == nil {
		return store.Sum(pack)
	}
	h, err := blake3.NewKeyed(r.current().name)
	if err != nil {
		panic(err) // the key is 32 bytes
	}
	h.Write(pack)
	var id store.ID
	h.Sum(id[:0])
	return id
}

// Key material. A key file (or variable) holds a raw 32-byte key, 64 hex digits or base64 of
// 32 bytes; anything else is a passphrase, run through Argon2id with the salt and parameters
// of the remote's marker.

// keySource is one key as given: a master key, or a passphrase still to derive.
type keySource struct {
	origin     string // the file or variable it came from
	master     []byte
	passphrase []byte
}

func parseKey(origin string, data []byte) (keySource, error) {
	ks := keySource{origin: origin}
	if len(data) == 32 {
		ks.master = bytes.Clone(data)
		return ks, nil
	}
	t := bytes.TrimRightFunc(data, unicode.IsSpace)
	if len(t) == 64 {
		if k, err := hex.DecodeString(string(t)); err == nil {
			ks.master = k
			return ks, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(string(t)); err == nil && len(k) == 32 {
			ks.master = k // KMS command lines print keys in base64 (Azure: URL-safe)
			return ks, nil
		}
	}
	if len(t) < 8 {
		return ks, keyErrorf("%s: a key is 32 bytes (raw, 64 hex digits or base64) and a passphrase at least 8 characters", origin)
	}
	ks.passphrase = bytes.Clone(t)
	return ks, nil
}

// readKeyFile reads a key file.
func readKeyFile(path string) (keySource, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return keySource{}, keyErrorf("key file: %v", err)
	}
	if fi.Size() > 4<<10 {
		return keySource{}, keyErrorf("key file %s is larger than 4 KiB", path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return keySource{}, keyErrorf("key file: %v", err)
	}
	return parseKey(path, data)
}

// EnvKey returns the environment variable that holds the key of remote name:
// AGENTFS_REMOTE_KEY_<NAME>, NAME upper-cased with other characters than letters and
// digits as '_'.
func EnvKey(name string) string {
	b := []byte(strings.ToUpper(name))
	for i, c := range b {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			b[i] = '_'
		}
	}
	return "AGENTFS_REMOTE_KEY_" + string(b)
}

// EnvKeyAll is the environment variable that gives the key of every encrypted remote that
// has no key of its own.
const EnvKeyAll = "AGENTFS_REMOTE_KEY"

// kdfParams are the Argon2id parameters a remote's marker keeps for passphrases.
type kdfParams struct {
	Name      string `json:"name"` // "argon2id"
	Salt      string `json:"salt"` // base64
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
}

// encParams is the "encryption" member of an encrypted remote's marker.
type encParams struct {
	Cipher string    `json:"cipher"` // "xchacha20-poly1305"
	KDF    kdfParams `json:"kdf"`
}

const cipherName = "xchacha20-poly1305"

func newEncParams() *encParams {
	salt := make([]byte, 16)
	rand.Read(salt)
	// RFC 9106's second recommended option (64 MiB, 3 passes, 4 lanes).
	return &encParams{Cipher: cipherName, KDF: kdfParams{Name: "argon2id", Salt: base64.StdEncoding.EncodeToString(salt),
		Time: 3, MemoryKiB: 64 << 10, Threads: 4}}
}

// check refuses parameters this version does not use, or that would cost too much: the
// marker is bucket content like any other.
func (p *encParams) check() ([]byte, error) {
	salt, err := base64.StdEncoding.DecodeString(p.KDF.Salt)
	switch {
	case p.Cipher != cipherName:
		return nil, fmt.Errorf("%w: the remote's cipher %q is not %s", ErrFormat, p.Cipher, cipherName)
	case p.KDF.Name != "argon2id":
		return nil, fmt.Errorf("%w: the remote's key derivation %q is not argon2id", ErrFormat, p.KDF.Name)
	case err != nil || len(salt) < 16 || len(salt) > 64:
		return nil, fmt.Errorf("%w: the remote's key derivation salt is malformed", ErrFormat)
	case p.KDF.Time < 1 || p.KDF.Time > 16 || p.KDF.MemoryKiB < 8<<10 || p.KDF.MemoryKiB > 1<<20 || p.KDF.Threads < 1 || p.KDF.Threads > 16:
		return nil, fmt.Errorf("%w: the remote's key derivation parameters are out of bounds", ErrFormat)
	}
	return salt, nil
}

// newRing derives the keys of sources with the remote's parameters.
func newRing(remote string, p *encParams, sources []keySource) (*keyRing, error) {
	r := &keyRing{remote: remote, env: EnvKey(remote)}
	var salt []byte
	for _, s := range sources {
		master := s.master
		if master == nil {
			if salt == nil {
				var err error
				if salt, err = p.check(); err != nil {
					return nil, err
				}
			}
			master = argon2.IDKey(s.passphrase, salt, p.KDF.Time, p.KDF.MemoryKiB, p.KDF.Threads, 32)
		}
		k, err := deriveKey(master)
		if err != nil {
			return nil, err
		}
		if r.find(k.id[:]) == nil {
			r.keys = append(r.keys, k)
		}
	}
	if len(r.keys) == 0 {
		return nil, keyErrorf("remote %s is encrypted and no key is set for it: give it with agentfs remote add %s URL --key-file FILE (or clone --key-file), or in %s", remote, remote, r.env)
	}
	return r, nil
}

// Codec seals and names objects the way an encrypted remote does, for tools and tests that
// write a bucket without a repository (internal/hostile). The nil *Codec writes plaintext.
type Codec struct{ r *keyRing }

// NewCodec returns the codec of the 32-byte master key.
func NewCodec(master []byte) (*Codec, error) {
	k, err := deriveKey(master)
	if err != nil {
		return nil, err
	}
	return &Codec{&keyRing{remote: "test", keys: []*dataKey{k}}}, nil
}

func (c *Codec) ring() *keyRing {
	if c == nil {
		return nil
	}
	return c.r
}

// PackMagic is how a pack starts.
func (c *Codec) PackMagic() []byte { return c.ring().packMagic() }

// SealEntry turns the stored form of block id (codec byte + payload) into a pack entry.
func (c *Codec) SealEntry(id store.ID, stored []byte) []byte {
	if c == nil {
		return stored
	}
	return c.r.current().seal(nil, stored, ad("object", id[:]))
}

// PackName names a pack.
func (c *Codec) PackName(pack []byte) store.ID { return c.ring().packName(pack) }

// Seal seals a whole object: purpose "ref" (name: the branch), "index" (name: the pack's
// hex name) or "lease" (name: its key).
func (c *Codec) Seal(purpose, name string, plain []byte) []byte {
	return c.ring().sealWhole(purpose, name, plain)
}

// Open opens a whole object.
func (c *Codec) Open(purpose, name string, v []byte) ([]byte, error) {
	return c.ring().openWhole(purpose, name, v)
}
