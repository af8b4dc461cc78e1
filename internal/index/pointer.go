package index

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// Pointer is the content of images/NAME/latest: which version is current, pinned by the
// SHA-256 of its index file so a mirror cannot pair the pointer with another index.
type Pointer struct {
	Name    string
	Version uint64
	SHA256  [32]byte
}

const pointerMagic = "nowhere-latest 1"

// NewPointer points at an encoded index file.
func NewPointer(ix *Index, file []byte) Pointer {
	return Pointer{Name: ix.Name, Version: ix.Version, SHA256: sha256.Sum256(file)}
}

// Encode returns the pointer as a few lines of text.
func (p Pointer) Encode() []byte {
	return fmt.Appendf(nil, "%s\nname %s\nversion %d\nsha256 %x\n", pointerMagic, p.Name, p.Version, p.SHA256)
}

// Matches reports whether file is the index the pointer names.
func (p Pointer) Matches(file []byte) bool { return sha256.Sum256(file) == p.SHA256 }

// MaxPointer bounds a pointer file.
const MaxPointer = 4 << 10

// ParsePointer parses a pointer file. Unknown keys are ignored (later versions may add some).
func ParsePointer(b []byte) (Pointer, error) {
	var p Pointer
	if len(b) > MaxPointer {
		return p, fmt.Errorf("latest pointer: %d bytes, larger than %d", len(b), MaxPointer)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	if !sc.Scan() || sc.Text() != pointerMagic {
		return p, fmt.Errorf("latest pointer: does not start with %q", pointerMagic)
	}
	var haveVersion, haveSum bool
	for sc.Scan() {
		key, val, _ := strings.Cut(sc.Text(), " ")
		switch key {
		case "name":
			if err := ValidName(val); err != nil {
				return p, fmt.Errorf("latest pointer: %v", err)
			}
			p.Name = val
		case "version":
			v, err := strconv.ParseUint(val, 10, 64)
			if err != nil {
				return p, fmt.Errorf("latest pointer: bad version %q", val)
			}
			p.Version, haveVersion = v, true
		case "sha256":
			s, err := hex.DecodeString(val)
			if err != nil || len(s) != 32 {
				return p, fmt.Errorf("latest pointer: bad sha256 %q", val)
			}
			copy(p.SHA256[:], s)
			haveSum = true
		}
	}
	if p.Name == "" || !haveVersion || !haveSum {
		return p, fmt.Errorf("latest pointer: missing name, version or sha256")
	}
	return p, nil
}
