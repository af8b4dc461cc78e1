package trust

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/index"
)

var testNow = time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)

func clock() time.Time { return testNow }

func TestIndexSignedByTrustedKeyIsAccepted(t *testing.T) {
	k := seededKey(t, "publisher")
	_, file := signedIndex(t, k, "debian", 3, testNow.Add(time.Hour))
	v := mustVerifier(t, Policy{Keys: []PublicKey{k.Public()}, Now: clock})
	ix, err := v.Index("debian", 0, file)
	if err != nil {
		t.Fatal(err)
	}
	if ix.Name != "debian" || ix.Version != 3 {
		t.Fatalf("got %s version %d", ix.Name, ix.Version)
	}
	if err := v.Check(ix, file, "debian", 3); err != nil {
		t.Fatalf("Check of the same index: %v", err)
	}
}

func TestIndexRefusals(t *testing.T) {
	k := seededKey(t, "publisher")
	attacker := seededKey(t, "attacker")
	trusted := Policy{Keys: []PublicKey{k.Public()}, Now: clock}

	_, unsigned := testIndex(t, "debian", 3, time.Time{})
	_, otherKey := signedIndex(t, attacker, "debian", 3, time.Time{})
	_, expired := signedIndex(t, k, "debian", 3, testNow.Add(-time.Minute))
	_, otherImage := signedIndex(t, k, "tools", 3, time.Time{})
	_, good := signedIndex(t, k, "debian", 3, time.Time{})
	tampered := append([]byte(nil), good...)
	tampered[30] ^= 1 // inside the compressed body, covered by the signature

	for _, c := range []struct {
		name    string
		file    []byte
		version uint64
		reason  error
		says    string
	}{
		{"unsigned", unsigned, 0, ErrUnsigned, "not signed"},
		{"another key", otherKey, 0, ErrUntrustedKey, "signed by key " + attacker.ID() + ", which is not a trusted key (trusted: " + k.ID() + ")"},
		{"tampered after signing", tampered, 0, ErrBadSignature, "bad signature"},
		{"expired", expired, 0, ErrExpired, "expired at 2026-11-25T12:59:00Z"},
		{"another image", otherImage, 0, ErrWrongImage, `for image "tools", not "debian"`},
		{"another version", good, 4, ErrWrongImage, "not the requested version 4"},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := mustVerifier(t, trusted)
			_, err := v.Index("debian", c.version, c.file)
			if !errors.Is(err, c.reason) || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("got %v, want %v saying %q", err, c.reason, c.says)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("refusal is not one line: %q", err)
			}
		})
	}
}

func TestRollbackRefusedOnlyWhenTheStoreChoseTheVersion(t *testing.T) {
	k := seededKey(t, "publisher")
	state := OpenState(filepath.Join(t.TempDir(), "cache", StateFileName))
	v := mustVerifier(t, Policy{Keys: []PublicKey{k.Public()}, State: state, Now: clock})
	_, v2 := signedIndex(t, k, "debian", 2, time.Time{})
	_, v3 := signedIndex(t, k, "debian", 3, time.Time{})

	if _, err := v.Index("debian", 0, v3); err != nil {
		t.Fatal(err)
	}
	if h, _ := state.Highest("debian", k.Public().ID()); h != 3 {
		t.Fatalf("state holds %d after accepting version 3", h)
	}
	_, err := v.Index("debian", 0, v2)
	if !errors.Is(err, ErrRollback) || !strings.Contains(err.Error(), "version 2 of \"debian\", older than version 3 already accepted") {
		t.Fatalf("replayed version 2 through latest: got %v", err)
	}
	// A version the user names explicitly is what the user asked for.
	if _, err := v.Index("debian", 2, v2); err != nil {
		t.Fatalf("explicit version 2: %v", err)
	}
	if h, _ := state.Highest("debian", k.Public().ID()); h != 3 {
		t.Fatalf("state went down to %d", h)
	}
	// The memory survives the process: a new verifier over the same file refuses too.
	v = mustVerifier(t, Policy{Keys: []PublicKey{k.Public()}, State: OpenState(state.Path()), Now: clock})
	if _, err := v.Index("debian", 0, v2); !errors.Is(err, ErrRollback) {
		t.Fatalf("after reopening the state: %v", err)
	}
}

func TestInsecureAcceptsWithWarningAndRecordsNothing(t *testing.T) {
	k := seededKey(t, "publisher")
	state := OpenState(filepath.Join(t.TempDir(), StateFileName))
	var warnings []string
	v := mustVerifier(t, Policy{Insecure: true, State: state, Now: clock,
		Warn: func(f string, a ...any) { warnings = append(warnings, f) }})
	_, unsigned := testIndex(t, "debian", 9, time.Time{})
	if _, err := v.Index("debian", 0, unsigned); err != nil {
		t.Fatalf("insecure refused an unsigned index: %v", err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "INSECURE") {
		t.Fatalf("warnings: %q", warnings)
	}
	if h, _ := state.Highest("debian", k.Public().ID()); h != 0 {
		t.Fatalf("an unverified index raised the state to %d", h)
	}
	// Even insecure, another image's index is never what was asked for.
	_, other := signedIndex(t, k, "tools", 1, time.Time{})
	if _, err := v.Index("debian", 0, other); !errors.Is(err, ErrWrongImage) {
		t.Fatalf("insecure accepted another image: %v", err)
	}
}

func TestNoKeysNeedsInsecure(t *testing.T) {
	if _, err := NewVerifier(Policy{}); err == nil || !strings.Contains(err.Error(), "no trusted key") {
		t.Fatalf("got %v", err)
	}
}

func TestPointerSignature(t *testing.T) {
	k := seededKey(t, "publisher")
	attacker := seededKey(t, "attacker")
	v := mustVerifier(t, Policy{Keys: []PublicKey{k.Public()}})
	p := index.Pointer{Name: "debian", Version: 4}
	signed, _, err := k.SignPointer(p)
	if err != nil {
		t.Fatal(err)
	}
	text, err := v.Pointer("debian", signed)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := index.ParsePointer(text); err != nil || got != p {
		t.Fatalf("parsed %+v, %v", got, err)
	}
	// Readers that know nothing of signatures still parse a signed pointer.
	if got, err := index.ParsePointer(signed); err != nil || got != p {
		t.Fatalf("plain ParsePointer of a signed pointer: %+v, %v", got, err)
	}

	if _, err := v.Pointer("debian", p.Encode()); !errors.Is(err, ErrUnsigned) {
		t.Fatalf("unsigned pointer: %v", err)
	}
	forged, _, _ := attacker.SignPointer(index.Pointer{Name: "debian", Version: 1})
	if _, err := v.Pointer("debian", forged); !errors.Is(err, ErrUntrustedKey) {
		t.Fatalf("pointer by another key: %v", err)
	}
	altered := []byte(strings.Replace(string(signed), "version 4", "version 1", 1))
	if _, err := v.Pointer("debian", altered); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("altered pointer: %v", err)
	}
}

func TestSignatureBlockIsMinisignText(t *testing.T) {
	k := seededKey(t, "publisher")
	ix, file := signedIndex(t, k, "debian", 5, time.Time{})
	id, err := SignatureKeyID(ix.Signature)
	if err != nil || id != k.ID() {
		t.Fatalf("key ID %q, %v; want %s", id, err, k.ID())
	}
	s := string(ix.Signature)
	if !strings.HasPrefix(s, "untrusted comment: ") || !strings.Contains(s, "\ntrusted comment: nowhere index debian version 5 ") {
		t.Fatalf("signature block:\n%s", s)
	}
	signed, sig, err := SplitIndex(file)
	if err != nil || string(sig) != s || len(signed) != len(ix.Signed) {
		t.Fatalf("SplitIndex disagrees with Decode: %v", err)
	}
}

// TestRollbackMemoryIsPerPublisher: two trusted publishers both call an image debian;
// accepting version 5 from one does not make version 2 from the other a "rollback", while
// a replay of the first publisher's older version still is. A state line written before
// keys were recorded still counts for every key.
func TestRollbackMemoryIsPerPublisher(t *testing.T) {
	a, b := seededKey(t, "publisher-a"), seededKey(t, "publisher-b")
	state := OpenState(filepath.Join(t.TempDir(), StateFileName))
	v := mustVerifier(t, Policy{Keys: []PublicKey{a.Public(), b.Public()}, State: state, Now: clock})
	_, a5 := signedIndex(t, a, "debian", 5, time.Time{})
	_, a4 := signedIndex(t, a, "debian", 4, time.Time{})
	_, b2 := signedIndex(t, b, "debian", 2, time.Time{})
	if _, err := v.Index("debian", 0, a5); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Index("debian", 0, b2); err != nil {
		t.Fatalf("publisher b's version 2 after publisher a's version 5: %v", err)
	}
	if _, err := v.Index("debian", 0, a4); !errors.Is(err, ErrRollback) || !strings.Contains(err.Error(), a.Public().ID()) {
		t.Fatalf("publisher a's version 4 after its version 5: %v, want a rollback naming key %s", err, a.Public().ID())
	}
	if ha, _ := state.Highest("debian", a.Public().ID()); ha != 5 {
		t.Errorf("state for a: %d, want 5", ha)
	}
	if hb, _ := state.Highest("debian", b.Public().ID()); hb != 2 {
		t.Errorf("state for b: %d, want 2", hb)
	}
	legacy := filepath.Join(t.TempDir(), StateFileName)
	os.WriteFile(legacy, []byte("nowhere-trust-state 1\ndebian 3\n"), 0o644)
	old := mustVerifier(t, Policy{Keys: []PublicKey{b.Public()}, State: OpenState(legacy), Now: clock})
	if _, err := old.Index("debian", 0, b2); !errors.Is(err, ErrRollback) {
		t.Errorf("a keyless state line of version 3, then version 2: %v, want a rollback", err)
	}
	if _, err := ParseState([]byte("nowhere-trust-state 1\ndebian@ 3\n")); err == nil {
		t.Error("a state line with an empty key ID parsed")
	}
}
