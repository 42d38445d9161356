package main

// Flags and commands of encrypted and signed remotes: --key-file, --trust, --trust-file,
// agentfs keygen, agentfs remote rekey (docs/cli.md, docs/format.md).

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/agentfs/agentfs/api"
	"github.com/agentfs/agentfs/remote"
)

type securityFlags struct {
	keyFiles  []string
	trustKeys []string
	trustFile string
}

func (f *securityFlags) keyFlags(c *cobra.Command) {
	c.Flags().StringArrayVar(&f.keyFiles, "key-file", nil, "encryption key of the remote: a file with 32 bytes, 64 hex digits, base64 of 32 bytes, or a passphrase (repeatable: the first encrypts, all decrypt)")
}

func (f *securityFlags) trustFlags(c *cobra.Command) {
	c.Flags().StringArrayVar(&f.trustKeys, "trust", nil, "accept only branches signed by this public key (ed25519:..., from agentfs keygen; repeatable; remembered for the remote)")
	c.Flags().StringVar(&f.trustFile, "trust-file", "", "file of trusted public keys, one a line (# comments)")
}

// trust returns the trusted keys given, nil when none were (keep what is remembered).
func (f *securityFlags) trust() ([]string, error) {
	keys := append([]string(nil), f.trustKeys...)
	if f.trustFile != "" {
		fh, err := os.Open(f.trustFile)
		if err != nil {
			return nil, usageError{fmt.Errorf("--trust-file: %w", err)}
		}
		defer fh.Close()
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
				keys = append(keys, l)
			}
		}
		if err := sc.Err(); err != nil {
			return nil, err
		}
		if len(keys) == 0 {
			return nil, usageError{fmt.Errorf("--trust-file %s holds no key", f.trustFile)}
		}
	}
	for _, k := range keys {
		if _, err := remote.ParsePublicKey(k); err != nil {
			return nil, usageError{err}
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	return keys, nil
}

// security returns the keys and trust given; key files are made absolute (a daemon reads
// them from its own working directory).
func (f *securityFlags) security() (remote.Security, error) {
	var s remote.Security
	for _, k := range f.keyFiles {
		abs, err := filepath.Abs(k)
		if err != nil {
			return s, err
		}
		if _, err := os.Stat(abs); err != nil {
			return s, usageError{fmt.Errorf("--key-file: %w", err)}
		}
		s.KeyFiles = append(s.KeyFiles, abs)
	}
	var err error
	s.Trust, err = f.trust()
	return s, err
}

func keygenCmd() *cobra.Command {
	var force, asJSON bool
	cmd := &cobra.Command{
		Use:   "keygen [--force]",
		Short: "Create the repository's signing key (pushes sign their refs with it) and print its public key",
		Long: "keygen creates an ed25519 key in REPO/" + remote.SigningKeyFile + " (mode 0600). From then on every\n" +
			"push signs the ref it writes. Give the printed public key to those who pull: agentfs clone URL\n" +
			"--trust PUBKEY. An existing key is kept (its public key printed) unless --force.",
		Args: nargs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			dir := repoDir()
			if _, err := os.Stat(filepath.Join(dir, "FORMAT")); err != nil {
				return fmt.Errorf("no agentfs repository at %s: run agentfs init first", dir)
			}
			pub, made, err := remote.Keygen(dir, force)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(map[string]any{"public_key": pub, "created": made, "file": filepath.Join(dir, remote.SigningKeyFile)})
			}
			fmt.Println(pub)
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing key")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func rekeyCmd() *cobra.Command {
	var keyFile string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "rekey NAME --key-file NEW",
		Short: "Encrypt an encrypted remote with a new key: new pushes use it, and the bucket is rewritten with it",
		Long: "rekey makes NEW the key that encrypts what is pushed to NAME from now on and rewrites every\n" +
			"pack, index and ref in the bucket that an older key encrypted. The old keys stay in the\n" +
			"remote's key ring, so what other hosts push with them stays readable; give the new key to\n" +
			"every host. It takes the remote's collection lock: pushes wait until it ends.",
		Args: nargs(1, "NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			if keyFile == "" {
				return usageError{fmt.Errorf("rekey needs --key-file NEW")}
			}
			abs, err := filepath.Abs(keyFile)
			if err != nil {
				return err
			}
			return run(func(ctx context.Context, s api.Service) error {
				res, err := s.RemoteRekey(ctx, args[0], abs)
				if err != nil {
					return err
				}
				return done(asJSON, res, "remote %s now encrypted with key %s: %d of %d packs, %d refs rewritten",
					res.Remote, res.KeyID, res.Rewritten, res.Packs, res.Refs)
			})
		},
	}
	cmd.Flags().StringVar(&keyFile, "key-file", "", "the new key (same forms as remote add --key-file)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
