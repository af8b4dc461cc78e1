// Package chunk defines what a chunk is: its ID (the SHA-256 of its plain bytes), how it
// is encoded on disk (one zstd frame) and where an image is cut into chunks.
package chunk

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// IDSize is the size of a chunk ID in bytes.
const IDSize = sha256.Size

// ID names a chunk by the SHA-256 of its uncompressed content. Same content, same ID.
type ID [IDSize]byte

// Sum returns the ID of data.
func Sum(data []byte) ID { return ID(sha256.Sum256(data)) }

// String returns the ID as 64 lower-case hex digits, the form used in file names.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether id is the all-zero value (no chunk has it: used as "none").
func (id ID) IsZero() bool { return id == ID{} }

// ParseID parses 64 hex digits.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*IDSize {
		return id, fmt.Errorf("chunk ID %q: want %d hex digits, got %d", s, 2*IDSize, len(s))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("chunk ID %q: not hex", s)
	}
	return id, nil
}

// Ref is what a reader knows about a chunk before fetching it (from the index): enough to
// bound the fetch (Stored) and to verify the result (ID, Len).
type Ref struct {
	ID     ID
	Len    uint32 // plain size
	Stored uint32 // size of the chunk file; 0 when unknown
}
