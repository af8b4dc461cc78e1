// Package trust decides whether to believe what a store serves. Indexes and latest pointers
// are signed with Ed25519 keys in minisign's formats (so the minisign tool can check them
// too); a Verifier checks the signature against trusted keys and then the policy that
// defeats the classic update attacks: another key, another image's index (mix-and-match),
// an expired index (freeze), an older version than one already accepted (rollback).
// docs/security.md is the threat model.
package trust

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"aead.dev/minisign"
)

// DefaultKeyFile is where an installed system (and the initramfs) keeps the keys it trusts
// when none are given: minisign public keys, one or more, each optionally preceded by
// its "untrusted comment:" line.
const DefaultKeyFile = "/etc/nowhere/trusted.pub"

// maxKeyFile bounds a key file: a few hundred keys at most.
const maxKeyFile = 64 << 10

// secretKeySize is the decoded size of a minisign secret key.
const secretKeySize = 158

// PublicKey is a minisign Ed25519 public key.
type PublicKey struct{ k minisign.PublicKey }

// ID is the key's minisign key ID, written as minisign writes it (hex, upper case).
func (k PublicKey) ID() string { return keyID(k.k.ID()) }

// String is the key as minisign's -P option takes it (base64).
func (k PublicKey) String() string { return k.k.String() }

// MarshalText is the public key file minisign writes (comment line, key line, newline).
func (k PublicKey) MarshalText() []byte {
	b, _ := k.k.MarshalText()
	return append(b, '\n')
}

func keyID(id uint64) string { return strings.ToUpper(strconv.FormatUint(id, 16)) }

// ParsePublicKey parses one key: a base64 key string ("RW...") or the content of a minisign
// public key file.
func ParsePublicKey(text []byte) (PublicKey, error) {
	keys, err := ParsePublicKeys(text)
	if err != nil {
		return PublicKey{}, err
	}
	if len(keys) != 1 {
		return PublicKey{}, fmt.Errorf("%d public keys where one was expected", len(keys))
	}
	return keys[0], nil
}

// ParsePublicKeys parses a trusted-keys file: minisign public keys, one base64 key per
// line, each optionally preceded by an "untrusted comment:" line; blank lines and lines
// starting with '#' are ignored.
func ParsePublicKeys(text []byte) ([]PublicKey, error) {
	if len(text) > maxKeyFile {
		return nil, fmt.Errorf("%d bytes is too large for a key file", len(text))
	}
	var keys []PublicKey
	for i, line := range strings.Split(string(text), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "untrusted comment:") {
			continue
		}
		var k minisign.PublicKey
		if err := k.UnmarshalText([]byte(line)); err != nil {
			if b, derr := base64.StdEncoding.DecodeString(line); derr == nil && len(b) == secretKeySize {
				return nil, fmt.Errorf("line %d: this is a secret key; clients need the public key (and the secret key must stay secret)", i+1)
			}
			return nil, fmt.Errorf("line %d: not a minisign public key (%s)", i+1, strings.TrimPrefix(err.Error(), "minisign: "))
		}
		keys = append(keys, PublicKey{k})
	}
	if len(keys) == 0 {
		return nil, errors.New("no public key in it")
	}
	return keys, nil
}

// LoadKeys resolves key specifications as given on a command line or a kernel command
// line: each is a base64 public key string, or the path of a file holding one or more
// keys (ParsePublicKeys). Duplicates are dropped.
func LoadKeys(specs []string) ([]PublicKey, error) {
	var out []PublicKey
	seen := make(map[string]bool)
	for _, spec := range specs {
		keys, err := loadKeySpec(spec)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			if !seen[k.String()] {
				seen[k.String()] = true
				out = append(out, k)
			}
		}
	}
	return out, nil
}

func loadKeySpec(spec string) ([]PublicKey, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, errors.New("key: empty")
	}
	b, err := readSmallFile(spec, maxKeyFile)
	if err == nil {
		keys, err := ParsePublicKeys(b)
		if err != nil {
			return nil, fmt.Errorf("key file %s: %w", spec, err)
		}
		return keys, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("key file %s: %w", spec, err)
	}
	var k minisign.PublicKey
	if kerr := k.UnmarshalText([]byte(spec)); kerr != nil {
		return nil, fmt.Errorf("key %q: no such file, and not a minisign public key string", spec)
	}
	return []PublicKey{{k}}, nil
}

// readSmallFile reads a file of at most max bytes without trusting its size.
func readSmallFile(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, unwrapPath(err)
	}
	defer f.Close()
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(f, max+1))
	if err != nil {
		return nil, unwrapPath(err)
	}
	if n > max {
		return nil, fmt.Errorf("larger than %d bytes", max)
	}
	return buf.Bytes(), nil
}

// SecretKey is a minisign secret key, decrypted.
type SecretKey struct{ k minisign.PrivateKey }

// ID is the key's minisign key ID.
func (k *SecretKey) ID() string { return keyID(k.k.ID()) }

// Public returns the matching public key.
func (k *SecretKey) Public() PublicKey { return PublicKey{k.k.Public().(minisign.PublicKey)} }

// ErrWrongPassword is returned when an encrypted secret key does not decrypt.
var ErrWrongPassword = errors.New("wrong password (or a damaged key file)")

// SecretKeyEncrypted reports whether a secret key file's content is password-protected.
func SecretKeyEncrypted(text []byte) bool { return minisign.IsEncrypted(text) }

// ParseSecretKey reads a minisign secret key file's content. password is called only when
// the key is encrypted.
func ParseSecretKey(text []byte, password func() (string, error)) (*SecretKey, error) {
	if len(text) > maxKeyFile {
		return nil, errors.New("too large for a secret key file")
	}
	if !minisign.IsEncrypted(text) {
		var k minisign.PrivateKey
		if err := k.UnmarshalText(bytes.TrimSpace(text)); err != nil {
			return nil, fmt.Errorf("not a minisign secret key (%s)", strings.TrimPrefix(err.Error(), "minisign: "))
		}
		return checkSecretKey(&SecretKey{k})
	}
	if password == nil {
		return nil, errors.New("the key is encrypted and no password was given")
	}
	pw, err := password()
	if err != nil {
		return nil, err
	}
	k, err := minisign.DecryptKey(pw, bytes.TrimSpace(text))
	if err != nil {
		return nil, ErrWrongPassword
	}
	return checkSecretKey(&SecretKey{k})
}

// checkSecretKey refuses a key whose public half does not match its secret half (a
// damaged file): it would sign without error, and every client would refuse the result.
func checkSecretKey(k *SecretKey) (*SecretKey, error) {
	msg := []byte("nowhere key check")
	if !minisign.Verify(k.Public().k, msg, minisign.Sign(k.k, msg)) {
		return nil, errors.New("damaged: its public half does not match its secret half")
	}
	return k, nil
}

// LoadSecretKey reads a minisign secret key file (minisign -G or nowhere keygen).
func LoadSecretKey(path string, password func() (string, error)) (*SecretKey, error) {
	b, err := readSmallFile(path, maxKeyFile)
	if err != nil {
		return nil, fmt.Errorf("secret key %s: %w", path, err)
	}
	k, err := ParseSecretKey(b, password)
	if err != nil {
		return nil, fmt.Errorf("secret key %s: %w", path, err)
	}
	return k, nil
}

// GenerateKey makes a new key pair.
func GenerateKey() (*SecretKey, error) {
	_, priv, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return &SecretKey{priv}, nil
}

// MarshalText returns the secret key file as minisign writes it: encrypted with password
// (scrypt with minisign's parameters) or, for an empty password, unencrypted (minisign -W).
func (k *SecretKey) MarshalText(password string) ([]byte, error) {
	var b []byte
	var err error
	if password == "" {
		b, err = k.k.MarshalText()
	} else {
		b, err = minisign.EncryptKey(password, k.k)
	}
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// unwrapPath drops *fs.PathError's "open PATH:" prefix: messages here name the path.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
