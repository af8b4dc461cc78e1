package chunk

import (
	"bytes"
	"errors"
	"testing"
)

// The decoder skips zstd's own frame checksum: the SHA-256 name must then catch every
// corruption. Flip each byte of a stored chunk in turn; Decode must never return bytes.
func TestDecodeRejectsEveryFlippedByte(t *testing.T) {
	plain := bytes.Repeat([]byte("nowhere boots from chunks over plain HTTP. "), 300)
	id := Sum(plain)
	stored := Encode(nil, plain)
	if got, err := Decode(nil, id, len(plain), stored); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("intact chunk: err %v", err)
	}
	for i := range stored {
		bad := bytes.Clone(stored)
		bad[i] ^= 0x40
		got, err := Decode(nil, id, len(plain), bad)
		if err == nil || !errors.Is(err, ErrCorrupt) || got != nil {
			t.Fatalf("byte %d of %d flipped: Decode returned %d bytes, err %v", i, len(stored), len(got), err)
		}
	}
}
