package trust

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/nowhere-boot/nowhere/internal/index"
)

// The parsers here read bytes an attacker controls: key strings from a kernel command line,
// signature blocks and pointer files from any mirror, a state file on a shared disk. Each
// fuzz target checks that hostile input never panics, and that no mutation of a signed
// file is accepted as something it is not.

func FuzzParsePublicKeys(f *testing.F) {
	k := seededKey(f, "fuzz public keys")
	f.Add(k.Public().MarshalText())
	f.Add([]byte(k.Public().String()))
	f.Add([]byte("# trusted\n" + string(k.Public().MarshalText()) + "\n" + seededKey(f, "other").Public().String() + "\n"))
	f.Add([]byte("untrusted comment: x\nRWQAAAAA\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		keys, err := ParsePublicKeys(b)
		if err != nil {
			return
		}
		var again []byte
		for _, k := range keys {
			again = append(again, k.MarshalText()...)
		}
		keys2, err := ParsePublicKeys(again)
		if err != nil || len(keys2) != len(keys) {
			t.Fatalf("keys do not survive a round trip: %v", err)
		}
		for i := range keys {
			if keys[i].String() != keys2[i].String() || keys[i].ID() != keys2[i].ID() {
				t.Fatalf("key %d changed in a round trip", i)
			}
		}
	})
}

func FuzzParseSecretKey(f *testing.F) {
	k := seededKey(f, "fuzz secret key")
	plain, err := k.MarshalText("")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(plain)
	f.Add([]byte("untrusted comment: minisign encrypted secret key\nRWQAAEIy\n"))
	noPassword := func() (string, error) { return "", errors.New("no password in a fuzz test") }
	f.Fuzz(func(t *testing.T, b []byte) {
		// Encrypted keys stop at the password callback: scrypt with minisign's parameters
		// costs a GiB per try and is not a parser.
		sk, err := ParseSecretKey(b, noPassword)
		if err != nil {
			return
		}
		msg := []byte("message")
		pub := sk.Public()
		v := mustVerifier(t, Policy{Keys: []PublicKey{pub}})
		if err := v.verify("message", msg, sk.Sign(msg, "c")); err != nil {
			t.Fatalf("a parsed secret key's signature does not verify with its public key: %v", err)
		}
	})
}

func FuzzVerifyIndex(f *testing.F) {
	k := seededKey(f, "fuzz index")
	ix, signed := signedIndex(f, k, "debian", 7, time.Time{})
	_, other := signedIndex(f, seededKey(f, "attacker"), "debian", 8, time.Time{})
	_, unsigned := testIndex(f, "debian", 9, time.Time{})
	_, sig, _ := SplitIndex(signed)
	f.Add(signed)
	f.Add(other)
	f.Add(unsigned)
	f.Add(sig)
	// A decompression bomb, unsigned and signed by the trusted key (a publisher's bug):
	// refused unread, and refused by the decoder without expanding it.
	f.Add(bombIndex(f))
	f.Add(signBomb(f, k))
	f.Fuzz(func(t *testing.T, file []byte) {
		v := mustVerifier(t, Policy{Keys: []PublicKey{k.Public()}, Now: func() time.Time { return ix.Created }})
		got, err := v.Index("debian", 0, file)
		if err != nil {
			var re *RefusedError
			if !errors.As(err, &re) && !errors.Is(err, index.ErrFormat) {
				t.Fatalf("error is neither a refusal nor a format error: %v", err)
			}
			return
		}
		// Only the genuinely signed index may pass: the signed part is byte-for-byte the
		// one k signed (the signature's untrusted comment may differ: it is not signed).
		part, _ := index.SignedPart(file)
		want, _ := index.SignedPart(signed)
		if !bytes.Equal(part, want) || got.Version != 7 || got.Name != "debian" {
			t.Fatalf("accepted an index that k did not sign (version %d)", got.Version)
		}
	})
}

// bombIndex is an unsigned index file whose few KiB of body expand to a header and 16 MiB
// of empty (invalid) chunk-table entries.
func bombIndex(t testing.TB) []byte {
	le := binary.LittleEndian
	section := func(b []byte, typ uint32, n uint64) []byte {
		b = le.AppendUint32(b, typ)
		b = le.AppendUint32(b, 1)
		return le.AppendUint64(b, n)
	}
	const entries = 16 << 20 / 49
	var body []byte
	body = section(body, 1, 54+1)
	body = append(body, make([]byte, 52)...) // version, times, size, chunking: zeros
	body = append(body, 1, 0, 'x')           // name length 1, "x"
	body = section(body, 2, 8+49*entries)
	body = le.AppendUint64(body, entries)
	body = append(body, make([]byte, 49*entries)...)
	e, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	z := e.EncodeAll(body, nil)
	file := append([]byte(index.Magic), 1, 0, 0, 0, 0, 0, 0, 0)
	file = le.AppendUint64(file, uint64(len(z)))
	file = append(file, z...)
	return le.AppendUint32(file, 0)
}

// signBomb is bombIndex signed by k.
func signBomb(t testing.TB, k *SecretKey) []byte {
	file := bombIndex(t)
	part, err := index.SignedPart(file)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := index.WithSignature(file, k.Sign(part, "nowhere index x version 0"))
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// TestVerifyIndexRefusesBombs: an unsigned bomb is refused before it is decompressed, a
// signed one (or any in insecure mode) by the decoder at its first entry, each in one
// line.
func TestVerifyIndexRefusesBombs(t *testing.T) {
	k := seededKey(t, "bomb")
	for _, c := range []struct {
		what     string
		file     []byte
		insecure bool
		want     string
	}{
		{"unsigned", bombIndex(t), false, "not signed"},
		{"unsigned, insecure", bombIndex(t), true, "entry 0 is empty"},
		{"signed", signBomb(t, k), false, "entry 0 is empty"},
	} {
		v := mustVerifier(t, Policy{Keys: []PublicKey{k.Public()}, Insecure: c.insecure})
		_, err := v.Index("x", 0, c.file)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want one line mentioning %q", c.what, err, c.want)
		}
	}
}

func FuzzVerifyPointer(f *testing.F) {
	k := seededKey(f, "fuzz pointer")
	_, file := testIndex(f, "debian", 3, time.Time{})
	p := index.Pointer{Name: "debian", Version: 3}
	copy(p.SHA256[:], file[:32])
	signed, detached, err := k.SignPointer(p)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(signed)
	f.Add(p.Encode())
	f.Add(detached)
	f.Add(append(p.Encode(), p.Encode()...))
	f.Fuzz(func(t *testing.T, raw []byte) {
		v := mustVerifier(t, Policy{Keys: []PublicKey{k.Public()}})
		text, err := v.Pointer("debian", raw)
		if err != nil {
			return
		}
		if !bytes.Equal(text, p.Encode()) {
			t.Fatalf("accepted pointer text that k did not sign: %q", text)
		}
		if got, err := index.ParsePointer(text); err != nil || got != p {
			t.Fatalf("signed pointer text does not parse back: %v", err)
		}
	})
}

func FuzzParseState(f *testing.F) {
	f.Add(EncodeState(map[string]uint64{"debian": 7, "tools": 2}))
	f.Add([]byte(stateMagic + "\ndebian 18446744073709551615\n"))
	f.Add([]byte(stateMagic + "\ndebian 3\ndebian 9\n\n"))
	f.Add([]byte("nowhere-trust-state 2\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseState(b)
		if err != nil {
			return
		}
		m2, err := ParseState(EncodeState(m))
		if err != nil {
			t.Fatalf("encoded state does not parse: %v", err)
		}
		if len(m2) != len(m) {
			t.Fatalf("round trip changed %d names into %d", len(m), len(m2))
		}
		for n, v := range m {
			if m2[n] != v {
				t.Fatalf("%s: %d became %d", n, v, m2[n])
			}
		}
	})
}
