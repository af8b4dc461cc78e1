package trust

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"aead.dev/minisign"

	"github.com/nowhere-boot/nowhere/internal/index"
)

// Where signatures live (docs/security.md):
//
//   - An index file carries its signature in its own signature block: minisign signature
//     text over index.SignedPart (everything before the block). It travels with the file,
//     so no mirror, proxy or cache can separate the two.
//   - A latest pointer carries its signature appended to its text: the pointer lines, then
//     the four lines of a minisign signature over those pointer lines. Pointer parsers
//     ignore the extra lines; the pointer still changes in one atomic rename.
//   - Beside each, pack writes a detached signature of the whole file (N.index.minisig,
//     latest.minisig) so that `minisign -Vm FILE -p KEY.pub` checks a store with no nowhere
//     at hand. nowhere itself never reads the detached files.
//
// All signatures are minisign's prehashed Ed25519 (BLAKE2b-512, algorithm "ED"), its
// default since minisign 0.10; the trusted comment names what was signed.

// Sign returns a minisign signature (the text of a .minisig file) of msg, with a trusted
// comment that is signed along with it.
func (k *SecretKey) Sign(msg []byte, trustedComment string) []byte {
	r := minisign.NewReader(bytes.NewReader(msg))
	_, _ = io.Copy(io.Discard, r) // a bytes.Reader cannot fail
	return r.SignWithComments(k.k, oneLine(trustedComment), "signature from nowhere secret key "+k.ID())
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// IndexComment is the trusted comment of an index signature: what minisign -V shows.
func IndexComment(ix *index.Index) string {
	exp := "never"
	if !ix.Expires.IsZero() {
		exp = ix.Expires.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("nowhere index %s version %d created %s expires %s",
		ix.Name, ix.Version, ix.Created.UTC().Format(time.RFC3339), exp)
}

// SignIndex fills the signature block of an encoded index. It returns the signed index
// file and a detached signature of that whole file (for minisign -V).
func (k *SecretKey) SignIndex(ix *index.Index, file []byte) (signed, detached []byte, err error) {
	part, err := index.SignedPart(file)
	if err != nil {
		return nil, nil, err
	}
	comment := IndexComment(ix)
	sig := k.Sign(part, comment)
	if len(sig) > index.MaxSignature {
		return nil, nil, fmt.Errorf("signature of %d bytes exceeds the format's %d", len(sig), index.MaxSignature)
	}
	signed, err = index.WithSignature(file, sig)
	if err != nil {
		return nil, nil, err
	}
	return signed, k.Sign(signed, comment), nil
}

// SignPointer returns the latest pointer's text with its signature appended, and a
// detached signature of that whole file (for minisign -V).
func (k *SecretKey) SignPointer(p index.Pointer) (signed, detached []byte, err error) {
	text := p.Encode()
	comment := fmt.Sprintf("nowhere latest %s version %d", p.Name, p.Version)
	signed = append(append([]byte(nil), text...), k.Sign(text, comment)...)
	if len(signed) > index.MaxPointer {
		return nil, nil, fmt.Errorf("signed pointer of %d bytes exceeds %d", len(signed), index.MaxPointer)
	}
	return signed, k.Sign(signed, comment), nil
}

// sigLineStart opens the first line of a minisign signature.
const sigLineStart = "untrusted comment: "

// SplitPointer separates a latest pointer file into the pointer text and its appended
// signature (nil when unsigned). The text ends where the first line starting with
// "untrusted comment: " begins.
func SplitPointer(file []byte) (text, sig []byte) {
	if bytes.HasPrefix(file, []byte(sigLineStart)) {
		return nil, file
	}
	i := bytes.Index(file, []byte("\n"+sigLineStart))
	if i < 0 {
		return file, nil
	}
	return file[:i+1], file[i+1:]
}

// SplitIndex separates an index file into the part its signature covers and the
// signature block's content (empty when unsigned), without decoding the index body.
func SplitIndex(file []byte) (signed, sig []byte, err error) {
	signed, err = index.SignedPart(file)
	if err != nil {
		return nil, nil, err
	}
	rest := file[len(signed):]
	if len(rest) < 4 {
		return nil, nil, fmt.Errorf("%w: truncated: no signature block", index.ErrFormat)
	}
	n := binary.LittleEndian.Uint32(rest)
	if n > index.MaxSignature || int64(n) != int64(len(rest)-4) {
		return nil, nil, fmt.Errorf("%w: signature block of %d bytes declared, %d present", index.ErrFormat, n, len(rest)-4)
	}
	return signed, rest[4:], nil
}

// SignatureKeyID returns the ID of the key that made a minisign signature, as written in
// the signature (unverified: it only says which key to try).
func SignatureKeyID(sig []byte) (string, error) {
	s, err := parseSignature(sig)
	if err != nil {
		return "", err
	}
	return keyID(s.KeyID), nil
}

// maxSignatureText bounds the text of one minisign signature: four lines, two of them
// comments; minisign itself limits a comment to about 1 KiB.
const maxSignatureText = 8 << 10

func parseSignature(sig []byte) (minisign.Signature, error) {
	var s minisign.Signature
	if len(sig) > maxSignatureText {
		return s, fmt.Errorf("signature of %d bytes is larger than %d", len(sig), maxSignatureText)
	}
	if err := s.UnmarshalText(sig); err != nil {
		return s, errors.New(strings.TrimPrefix(err.Error(), "minisign: "))
	}
	return s, nil
}
