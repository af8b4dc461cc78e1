package trust

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"aead.dev/minisign"

	"github.com/nowhere-boot/nowhere/internal/index"
)

// The reasons a Verifier refuses; every refusal wraps one (errors.Is).
var (
	ErrUnsigned     = errors.New("not signed")
	ErrUntrustedKey = errors.New("signed by an untrusted key")
	ErrBadSignature = errors.New("bad signature")
	ErrWrongImage   = errors.New("another image's index (mix-and-match)")
	ErrExpired      = errors.New("expired (freeze)")
	ErrRollback     = errors.New("older than a version already accepted (rollback)")
)

// RefusedError is a refusal: one of the Err* reasons and a sentence for the user.
type RefusedError struct {
	Reason error
	Detail string
}

func (e *RefusedError) Error() string { return "refused: " + e.Detail }
func (e *RefusedError) Unwrap() error { return e.Reason }

func refuse(reason error, format string, args ...any) error {
	return &RefusedError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// Policy is what a Verifier trusts and how it checks.
type Policy struct {
	// Keys are the trusted public keys; a signature by any of them is good.
	Keys []PublicKey
	// Insecure accepts what fails verification (unsigned, another key, expired, older),
	// after a loud warning through Warn. What failed a check is never recorded in State.
	Insecure bool
	// State remembers the highest version accepted per image (rollback protection);
	// nil disables it.
	State *State
	// Now is the clock for expiry (nil: time.Now).
	Now func() time.Time
	// Warn receives warnings (nil: none); the CLI prints them to stderr.
	Warn func(format string, args ...any)
	// InsecureOption is how the user asks for insecure mode, for messages (default
	// "--insecure"; the boot says "nowhere.insecure").
	InsecureOption string
}

// Verifier checks pointers and indexes fetched from untrusted stores against a Policy.
// It is safe for concurrent use.
type Verifier struct {
	p Policy
}

// NewVerifier returns a verifier. Without keys it can only work in insecure mode.
func NewVerifier(p Policy) (*Verifier, error) {
	if p.InsecureOption == "" {
		p.InsecureOption = "--insecure"
	}
	if len(p.Keys) == 0 && !p.Insecure {
		return nil, fmt.Errorf("no trusted key: give the publisher's public key (--key), or %s to skip verification", p.InsecureOption)
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	return &Verifier{p: p}, nil
}

// Insecure reports whether the verifier accepts what fails verification.
func (v *Verifier) Insecure() bool { return v.p.Insecure }

// Keys returns the trusted keys.
func (v *Verifier) Keys() []PublicKey { return v.p.Keys }

func (v *Verifier) warn(format string, args ...any) {
	if v.p.Warn != nil {
		v.p.Warn(format, args...)
	}
}

// Pointer checks the signature of a latest pointer file for image name and returns the
// signed pointer text, the only part to parse.
func (v *Verifier) Pointer(name string, raw []byte) ([]byte, error) {
	if len(raw) > index.MaxPointer {
		return nil, fmt.Errorf("latest pointer: %d bytes, larger than %d", len(raw), index.MaxPointer)
	}
	text, sig := SplitPointer(raw)
	if err := v.verify("latest pointer", text, sig); err != nil {
		if !v.p.Insecure {
			return nil, err
		}
		v.warn("WARNING: INSECURE: following the latest pointer of %q unverified: %s", name, strings.TrimPrefix(err.Error(), "refused: "))
	}
	return text, nil
}

// Text checks the appended signature of a signed text file (what names it in messages,
// e.g. "versions file of debian") and returns the signed text, the only part to parse.
// Like Pointer, it warns instead of refusing in insecure mode.
func (v *Verifier) Text(what string, raw []byte) ([]byte, error) {
	text, sig := SplitPointer(raw)
	if err := v.verify(what, text, sig); err != nil {
		if !v.p.Insecure {
			return nil, err
		}
		v.warn("WARNING: INSECURE: reading the %s unverified: %s", what, strings.TrimPrefix(err.Error(), "refused: "))
	}
	return text, nil
}

// Index authenticates an index file fetched for image name (version 0: the version the
// latest pointer named) and returns it decoded. The signature is checked before the body
// is decompressed, so unauthenticated bytes never reach the decoder; then the policy:
// right image and version, not expired, not older than what was accepted before. An
// accepted index raises the state's version for name.
func (v *Verifier) Index(name string, version uint64, file []byte) (*index.Index, error) {
	signed, sig, err := SplitIndex(file)
	if err != nil {
		return nil, err
	}
	sigErr := v.verify("index", signed, sig)
	if sigErr != nil && !v.p.Insecure {
		return nil, sigErr
	}
	ix, err := index.Decode(file)
	if err != nil {
		return nil, err
	}
	if err := v.decide(ix, name, version, signer(sig), sigErr); err != nil {
		return nil, err
	}
	return ix, nil
}

// Check verifies an index the caller already decoded from file: the same checks as Index.
func (v *Verifier) Check(ix *index.Index, file []byte, name string, version uint64) error {
	signed, sig, err := SplitIndex(file)
	if err != nil {
		return err
	}
	sigErr := v.verify("index", signed, sig)
	if sigErr != nil && !v.p.Insecure {
		return sigErr
	}
	return v.decide(ix, name, version, signer(sig), sigErr)
}

// signer is the ID of the key a signature names ("" when there is none to read).
func signer(sig []byte) string {
	s, err := parseSignature(sig)
	if len(sig) == 0 || err != nil {
		return ""
	}
	return keyID(s.KeyID)
}

// decide applies the policy to a decoded index signed by key (its ID) whose signature
// check gave sigErr. The rollback memory is the publisher's: two publishers who both call
// an image debian do not hold each other back.
func (v *Verifier) decide(ix *index.Index, name string, version uint64, key string, sigErr error) error {
	problems := []error{sigErr}
	problems = append(problems, v.policy(ix, name, version, key)...)
	problems = nonNil(problems)
	if len(problems) == 0 {
		if v.p.State != nil {
			return v.p.State.Accept(ix.Name, key, ix.Version)
		}
		return nil
	}
	if !v.p.Insecure {
		return problems[0]
	}
	for _, p := range problems {
		if errors.Is(p, ErrWrongImage) {
			return p // another image is never what the user asked for, insecure or not
		}
	}
	why := make([]string, len(problems))
	for i, p := range problems {
		why[i] = strings.TrimPrefix(p.Error(), "refused: ")
	}
	v.warn("WARNING: INSECURE: accepting image %s version %d unverified: %s", ix.Name, ix.Version, strings.Join(why, "; "))
	return nil
}

func nonNil(errs []error) []error {
	out := errs[:0]
	for _, e := range errs {
		if e != nil {
			out = append(out, e)
		}
	}
	return out
}

// policy returns what is wrong with a (signed) index for image name, version (0: latest).
func (v *Verifier) policy(ix *index.Index, name string, version uint64, key string) []error {
	if ix.Name != name {
		return []error{refuse(ErrWrongImage, "the index is for image %q, not %q (mix-and-match)", ix.Name, name)}
	}
	if version != 0 && ix.Version != version {
		return []error{refuse(ErrWrongImage, "the index is version %d of %q, not the requested version %d (mix-and-match)", ix.Version, name, version)}
	}
	var errs []error
	now := v.p.Now()
	if !ix.Expires.IsZero() && now.After(ix.Expires) {
		errs = append(errs, refuse(ErrExpired, "version %d of %q expired at %s, %s ago (freeze: a stale mirror or a replay; the publisher must publish a fresh index)",
			ix.Version, name, ix.Expires.UTC().Format(time.RFC3339), now.Sub(ix.Expires).Round(time.Second)))
	}
	// Rollback applies where the store chose the version (through the latest pointer);
	// a version the user named is what the user asked for, and the signed index proves it.
	if version == 0 && v.p.State != nil {
		high, err := v.p.State.Highest(name, key)
		if err != nil {
			return append(errs, err)
		}
		if ix.Version < high {
			errs = append(errs, refuse(ErrRollback, "the store offers version %d of %q, older than version %d already accepted (rollback; remembered in %s for key %s)",
				ix.Version, name, high, v.p.State.Path(), key))
		}
	}
	return errs
}

// verify checks a minisign signature over msg against the trusted keys.
func (v *Verifier) verify(what string, msg, sig []byte) error {
	if len(sig) == 0 {
		return refuse(ErrUnsigned, "the %s is not signed (%s accepts unsigned images, unsafely)", what, v.p.InsecureOption)
	}
	s, err := parseSignature(sig)
	if err != nil {
		return refuse(ErrBadSignature, "the %s's signature is not a minisign signature: %v", what, err)
	}
	var key *PublicKey
	for i := range v.p.Keys {
		if v.p.Keys[i].k.ID() == s.KeyID {
			key = &v.p.Keys[i]
			break
		}
	}
	if key == nil {
		return refuse(ErrUntrustedKey, "the %s is signed by key %s, which is not a trusted key (trusted: %s)", what, keyID(s.KeyID), v.keyList())
	}
	if !minisign.Verify(key.k, msg, sig) {
		return refuse(ErrBadSignature, "bad signature on the %s: it names trusted key %s but does not verify (altered after signing, or forged)", what, key.ID())
	}
	return nil
}

func (v *Verifier) keyList() string {
	if len(v.p.Keys) == 0 {
		return "none"
	}
	ids := make([]string, len(v.p.Keys))
	for i, k := range v.p.Keys {
		ids[i] = k.ID()
	}
	return strings.Join(ids, ", ")
}
