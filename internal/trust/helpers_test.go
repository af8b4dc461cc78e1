package trust

import (
	"crypto/sha256"
	"encoding/binary"
	"testing"
	"time"

	"aead.dev/minisign"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/index"
)

// seededKey returns a key pair derived from seed, the same on every run: fuzz corpora and
// seeds stay meaningful across runs only if the trusted key does not change.
func seededKey(t testing.TB, seed string) *SecretKey {
	t.Helper()
	_, priv, err := minisign.GenerateKey(&detReader{seed: sha256.Sum256([]byte(seed))})
	if err != nil {
		t.Fatal(err)
	}
	return &SecretKey{priv}
}

// detReader is a deterministic byte stream (SHA-256 in counter mode).
type detReader struct {
	seed [32]byte
	n    uint64
	buf  []byte
}

func (r *detReader) Read(p []byte) (int, error) {
	for len(r.buf) < len(p) {
		var b [40]byte
		copy(b[:], r.seed[:])
		binary.LittleEndian.PutUint64(b[32:], r.n)
		r.n++
		s := sha256.Sum256(b[:])
		r.buf = append(r.buf, s[:]...)
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// testIndex returns an encoded, unsigned index of a small image.
func testIndex(t testing.TB, name string, version uint64, expires time.Time) (*index.Index, []byte) {
	t.Helper()
	data := []byte("some chunk of an image, for a test index")
	ix := &index.Index{
		Name: name, Version: version,
		Created:  time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC),
		Expires:  expires,
		Size:     int64(len(data)) + 4096,
		Chunking: chunk.Params{Kind: chunk.KindFixed, Min: 64 << 10, Avg: 64 << 10, Max: 64 << 10, Align: 1},
		Entries: []index.Entry{
			{Off: 0, Len: uint32(len(data)), Stored: 50, ID: chunk.Sum(data)},
			{Off: int64(len(data)), Len: 4096, Zero: true},
		},
	}
	file, err := index.Encode(ix)
	if err != nil {
		t.Fatal(err)
	}
	return ix, file
}

// signedIndex returns a decoded index and its file signed by k.
func signedIndex(t testing.TB, k *SecretKey, name string, version uint64, expires time.Time) (*index.Index, []byte) {
	t.Helper()
	ix, file := testIndex(t, name, version, expires)
	signed, _, err := k.SignIndex(ix, file)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := index.Decode(signed)
	if err != nil {
		t.Fatal(err)
	}
	return dec, signed
}

func mustVerifier(t testing.TB, p Policy) *Verifier {
	t.Helper()
	v, err := NewVerifier(p)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
