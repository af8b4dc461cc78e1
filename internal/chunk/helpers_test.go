package chunk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

// randBytes returns n pseudo-random bytes, the same for the same seed.
func randBytes(seed uint64, n int) []byte {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(s).Read(b)
	return b
}

// noZeroBlocks makes sure no 4 KiB block of b is all zeros, so the splitter sees one data
// region (random data almost never has one, but tests must not depend on luck).
func noZeroBlocks(b []byte) []byte {
	for i := 0; i < len(b); i += ZeroBlock {
		b[i] |= 1
	}
	return b
}

// piece is a Piece whose data has been copied (Splitter's Data is only valid until Next).
type piece struct {
	Off  int64
	Len  int
	Zero bool
	Data []byte
	ID   ID
}

// splitAll runs a Splitter over r to the end and checks the invariants every split obeys:
// pieces are contiguous from 0, non-empty, data pieces carry exactly Len bytes and are at
// most MaxLen long, zero pieces carry no data and are at most MaxZeroRun long.
func splitAll(t testing.TB, r io.Reader, c Chunker) []piece {
	t.Helper()
	s := NewSplitter(r, c)
	var out []piece
	var off int64
	for i := 0; ; i++ {
		p, err := s.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("piece %d: %v", i, err)
		}
		switch {
		case p.Off != off:
			t.Fatalf("piece %d at %d, want %d", i, p.Off, off)
		case p.Len <= 0:
			t.Fatalf("piece %d at %d: length %d", i, p.Off, p.Len)
		case p.Zero && p.Data != nil:
			t.Fatalf("zero piece %d carries data", i)
		case p.Zero && p.Len > MaxZeroRun:
			t.Fatalf("zero piece %d: %d bytes > MaxZeroRun", i, p.Len)
		case !p.Zero && len(p.Data) != p.Len:
			t.Fatalf("piece %d: Len %d but %d bytes of data", i, p.Len, len(p.Data))
		case !p.Zero && p.Len > c.MaxLen():
			t.Fatalf("piece %d: %d bytes > MaxLen %d", i, p.Len, c.MaxLen())
		}
		q := piece{Off: p.Off, Len: p.Len, Zero: p.Zero}
		if !p.Zero {
			q.Data = bytes.Clone(p.Data)
			q.ID = Sum(p.Data)
		}
		out = append(out, q)
		off += int64(p.Len)
	}
	if s.Offset() != off {
		t.Fatalf("Offset() = %d after %d bytes of pieces", s.Offset(), off)
	}
	return out
}

// join rebuilds the stream from pieces.
func join(ps []piece) []byte {
	var b bytes.Buffer
	for _, p := range ps {
		if p.Zero {
			b.Write(make([]byte, p.Len))
		} else {
			b.Write(p.Data)
		}
	}
	return b.Bytes()
}

func mustChunker(t testing.TB, spec string, autoAlign int) Chunker {
	t.Helper()
	sp, err := ParseSpec(spec)
	if err != nil {
		t.Fatal(err)
	}
	c, err := sp.New(autoAlign)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
