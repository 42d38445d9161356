package remote

// What a repository keeps about a remote besides its URL: the key files of an encrypted
// remote and the public keys whose signatures it trusts ('X' remote 0 'c', JSON), and the
// per-remote key ring built from them and the bucket's marker.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2"
)

// Security is how a remote is protected: the keys that encrypt it and the signing keys
// trusted on pull and clone.
type Security struct {
	// KeyFiles are key files (docs/format.md): the first seals what is pushed from now on,
	// all of them open what is read. Paths are made absolute. nil keeps what is configured.
	KeyFiles []string `json:"key_files,omitempty"`
	// Trust are public keys ("ed25519:..." as agentfs keygen prints them): pull and clone
	// refuse a branch whose ref is unsigned or signed by another key. nil keeps what is
	// configured; an empty non-nil list trusts any (or no) signature again.
	Trust []string `json:"trust,omitempty"`
}

func (m *Manager) config(name string) (Security, error) {
	var s Security
	v, ok, err := m.getKey(remoteKey(name, 'c'))
	if err != nil || !ok {
		return s, err
	}
	if err := json.Unmarshal(v, &s); err != nil {
		return s, fmt.Errorf("remote %s: its local settings are damaged: %v", name, err)
	}
	return s, nil
}

// configure merges sec into the settings of remote name (nil fields are kept).
func (m *Manager) configure(name string, sec Security) error {
	cur, err := m.config(name)
	if err != nil {
		return err
	}
	if sec.KeyFiles != nil {
		cur.KeyFiles = nil
		for _, f := range sec.KeyFiles {
			abs, err := filepath.Abs(f)
			if err != nil {
				return err
			}
			if _, err := readKeyFile(abs); err != nil {
				return err
			}
			cur.KeyFiles = append(cur.KeyFiles, abs)
		}
	}
	if sec.Trust != nil {
		if _, err := parseTrust(sec.Trust); err != nil {
			return err
		}
		cur.Trust = sec.Trust
	}
	v, _ := json.Marshal(cur)
	if err := m.st.Durable(func() error { return m.db.Set(remoteKey(name, 'c'), v, pebble.Sync) }); err != nil {
		return err
	}
	m.mu.Lock()
	delete(m.rings, name)
	m.mu.Unlock()
	return nil
}

// Configure changes the keys or the trusted signers of a configured remote.
func (m *Manager) Configure(ctx context.Context, name string, sec Security) error {
	if _, ok, err := m.getKey(remoteKey(name, 'u')); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("%w: %q", ErrNoRemote, name)
	}
	return m.configure(name, sec)
}

// keySources returns the keys given for remote name: its key files (the first seals new
// data), then its own variable, and only when it has neither, AGENTFS_REMOTE_KEY. own says
// whether it has keys of its own.
func (m *Manager) keySources(name string) (srcs []keySource, own bool, err error) {
	cfg, err := m.config(name)
	if err != nil {
		return nil, false, err
	}
	for _, f := range cfg.KeyFiles {
		ks, err := readKeyFile(f)
		if err != nil {
			return nil, false, fmt.Errorf("remote %s: %w", name, err)
		}
		srcs = append(srcs, ks)
	}
	for _, env := range []string{EnvKey(name), EnvKeyAll} {
		if env == EnvKeyAll && len(srcs) > 0 {
			break
		}
		if v := os.Getenv(env); v != "" {
			ks, err := parseKey(env, []byte(v))
			if err != nil {
				return nil, false, err
			}
			srcs = append(srcs, ks)
			own = own || env != EnvKeyAll
		}
	}
	return srcs, own || len(cfg.KeyFiles) > 0, nil
}

// ring returns the key ring of remote name: nil for a plaintext remote. It reads the bucket's
// marker once per process (an encrypted marker is cached with its ring).
func (m *Manager) ring(ctx context.Context, name string) (*keyRing, error) {
	m.mu.Lock()
	r, ok := m.rings[name]
	m.mu.Unlock()
	if ok {
		return r, nil
	}
	b, err := m.backend(ctx, name)
	if err != nil {
		return nil, err
	}
	mk, err := readMarker(ctx, b)
	if err != nil {
		return nil, fmt.Errorf("remote %s: %w", name, err)
	}
	srcs, own, err := m.keySources(name)
	if err != nil {
		return nil, err
	}
	switch {
	case mk == nil && own:
		// Refuse to read an encrypted remote's objects as plaintext because its marker is
		// gone; a push writes the marker first.
		return nil, keyErrorf("remote %s has no format marker (%s), but a key is set for it: push to it first, or check the bucket", name, keyFormat)
	case mk == nil && len(srcs) > 0:
		return nil, nil // a first push with AGENTFS_REMOTE_KEY makes it encrypted: look again
	case mk == nil:
		// No marker and no key: plaintext (a bucket written before markers, or empty), and
		// cached, so that lazy reads do not read the marker each time. A key set later
		// (configure) drops the cache.
	case mk.Encryption == nil && own:
		return nil, keyErrorf("remote %s is not encrypted, but a key is set for it: use a new bucket for encrypted data, or remove the key (agentfs remote remove %s, then add it without --key-file)", name, name)
	case mk.Encryption != nil:
		if r, err = newRing(name, mk.Encryption, srcs); err != nil {
			return nil, err
		}
	}
	m.mu.Lock()
	m.rings[name] = r
	m.mu.Unlock()
	return r, nil
}

// encryptNew reports whether a first push to remote name creates an encrypted remote.
func (m *Manager) encryptNew(name string) (bool, error) {
	srcs, _, err := m.keySources(name)
	return len(srcs) > 0, err
}
