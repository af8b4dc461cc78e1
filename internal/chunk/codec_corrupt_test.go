package chunk

import (
	"bytes"
	"errors"
	"testing"
)

// The decoder skips zstd's own frame checksum: the SHA-256 name must then catch every
// corruption. Flip each byte of a stored chunk in turn: Decode must fail with ErrCorrupt,
// or (when the flip hit only the unused frame checksum) return exactly the right bytes.
func TestDecodeRejectsEveryFlippedByte(t *testing.T) {
	plain := bytes.Repeat([]byte("nowhere boots from chunks over plain HTTP. "), 300)
	id := Sum(plain)
	stored := Encode(nil, plain)
	if got, err := Decode(nil, id, len(plain), stored); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("intact chunk: err %v", err)
	}
	checksumOnly := 0
	for i := range stored {
		bad := bytes.Clone(stored)
		bad[i] ^= 0x40
		got, err := Decode(nil, id, len(plain), bad)
		switch {
		case err == nil && !bytes.Equal(got, plain):
			t.Fatalf("byte %d of %d flipped: Decode returned wrong bytes without an error", i, len(stored))
		case err == nil:
			checksumOnly++
		case !errors.Is(err, ErrCorrupt) || got != nil:
			t.Fatalf("byte %d of %d flipped: Decode returned %d bytes, err %v", i, len(stored), len(got), err)
		}
	}
	if checksumOnly > 4 {
		t.Fatalf("%d flipped bytes went unnoticed; only the 4-byte frame checksum may", checksumOnly)
	}
}
