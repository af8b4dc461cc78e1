package trust

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nowhere-boot/nowhere/internal/index"
)

// State remembers, per publisher key and image name, the highest version this machine has
// accepted, so that a mirror replaying an older (validly signed) index is refused:
// rollback protection. Keyed by the publisher too, so two publishers who both call an
// image debian do not block each other's versions as "rollbacks". It is a small text
// file, rewritten atomically under a lock; a line without a key (written before keys were
// recorded) counts for every key:
//
//	nowhere-trust-state 1
//	debian@C384795F8E7BBD30 7
//	tools@C384795F8E7BBD30 2
//	old-image 4
type State struct {
	path string
}

// StateFileName is the state file's name inside a cache directory.
const StateFileName = "trust-state"

const (
	stateMagic = "nowhere-trust-state 1"
	// maxState bounds the state file: thousands of image names.
	maxState = 1 << 20
)

// OpenState uses the state file at path (created on first Accept).
func OpenState(path string) *State { return &State{path: path} }

// DefaultStatePath is where the state lives: in cacheDir when the client has one (the
// chunk cache, which survives reboots when it is on a disk), else in the user's cache
// directory.
func DefaultStatePath(cacheDir string) (string, error) {
	if cacheDir != "" {
		return filepath.Join(cacheDir, StateFileName), nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no place for the trust state (%v): give --state FILE", err)
	}
	return filepath.Join(d, "nowhere", StateFileName), nil
}

// Path is the state file.
func (s *State) Path() string { return s.path }

// Highest returns the highest version accepted for name from the publisher key (its
// ID; 0: none).
func (s *State) Highest(name, key string) (uint64, error) {
	m, err := s.read()
	if err != nil {
		return 0, err
	}
	return max(m[name], m[stateKey(name, key)]), nil
}

// stateKey is the state's key for image name from publisher key ("": any publisher).
func stateKey(name, key string) string {
	if key == "" {
		return name
	}
	return name + "@" + key
}

// Accept records that version v of name from publisher key was accepted, if it is higher
// than what the state holds. Concurrent clients on one machine serialize on a lock file
// beside the state.
func (s *State) Accept(name, key string, v uint64) error {
	if err := index.ValidName(name); err != nil {
		return err
	}
	if err := validKeyID(key); err != nil {
		return err
	}
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	m, err := s.read()
	if err != nil {
		return err
	}
	k := stateKey(name, key)
	if m[k] >= v {
		return nil
	}
	m[k] = v
	return s.write(m)
}

func (s *State) lock() (func(), error) {
	if err := os.MkdirAll(filepath.Dir(s.path), 0o755); err != nil {
		return nil, fmt.Errorf("trust state %s: %w", s.path, unwrapPath(err))
	}
	f, err := os.OpenFile(s.path+".lock", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("trust state %s: %w", s.path, unwrapPath(err))
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("trust state %s: lock: %w", s.path, err)
	}
	return func() { _ = unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
}

func (s *State) read() (map[string]uint64, error) {
	b, err := readSmallFile(s.path, maxState)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]uint64{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("trust state %s: %w", s.path, err)
	}
	m, err := ParseState(b)
	if err != nil {
		return nil, fmt.Errorf("trust state %s: %w (remove it to forget every accepted version)", s.path, err)
	}
	return m, nil
}

// ParseState parses the state file's content.
func ParseState(b []byte) (map[string]uint64, error) {
	if len(b) > maxState {
		return nil, fmt.Errorf("%d bytes, larger than %d", len(b), maxState)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	if !sc.Scan() || sc.Text() != stateMagic {
		return nil, fmt.Errorf("does not start with %q", stateMagic)
	}
	m := make(map[string]uint64)
	for line := 2; sc.Scan(); line++ {
		if sc.Text() == "" {
			continue
		}
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			return nil, fmt.Errorf("line %d: want NAME[@KEY] VERSION", line)
		}
		img, key, keyed := strings.Cut(name, "@")
		if err := index.ValidName(img); err != nil {
			return nil, fmt.Errorf("line %d: %v", line, err)
		}
		if keyed && key == "" {
			return nil, fmt.Errorf("line %d: %q: no key ID after @", line, name)
		}
		if err := validKeyID(key); err != nil {
			return nil, fmt.Errorf("line %d: %v", line, err)
		}
		v, err := strconv.ParseUint(val, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: bad version %q", line, val)
		}
		if v > m[name] {
			m[name] = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return m, nil
}

// EncodeState returns the state file's content, names sorted.
func EncodeState(m map[string]uint64) []byte {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	b := []byte(stateMagic + "\n")
	for _, n := range names {
		b = fmt.Appendf(b, "%s %d\n", n, m[n])
	}
	return b
}

// write replaces the state file atomically and durably: a crash leaves the old state or
// the new one, never a torn file that would either fail every boot or forget versions.
func (s *State) write(m map[string]uint64) error {
	dir := filepath.Dir(s.path)
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(dir, "."+filepath.Base(s.path)+".tmp-"+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("trust state %s: %w", s.path, unwrapPath(err))
	}
	_, err = f.Write(EncodeState(m))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("trust state %s: %w", s.path, unwrapPath(err))
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// validKeyID checks a key ID as the state records it: upper-case hex, at most 16 digits
// ("": none).
func validKeyID(key string) error {
	if len(key) > 16 {
		return fmt.Errorf("key ID %q: longer than 16 hex digits", key)
	}
	for _, r := range key {
		if !(r >= '0' && r <= '9' || r >= 'A' && r <= 'F') {
			return fmt.Errorf("key ID %q: not upper-case hex", key)
		}
	}
	return nil
}
