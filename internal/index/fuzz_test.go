package index

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
)

// FuzzDecodeIndex: Decode never panics, fails only with ErrFormat, and what it accepts
// obeys every rule of the format and survives a round trip.
func FuzzDecodeIndex(f *testing.F) {
	for _, s := range indexSeeds() {
		f.Add(s.data)
	}
	f.Fuzz(func(t *testing.T, file []byte) {
		ix, err := Decode(file)
		if err != nil {
			if !errors.Is(err, ErrFormat) || ix != nil {
				t.Fatalf("error %v (index %v): want ErrFormat and no index", err, ix != nil)
			}
			return
		}
		if err := ix.check(); err != nil {
			t.Fatalf("accepted an index that breaks the rules: %v", err)
		}
		if err := ValidName(ix.Name); err != nil {
			t.Fatal(err)
		}
		sp, err := SignedPart(file)
		if err != nil || !bytes.Equal(sp, ix.Signed) || len(ix.Signature) > MaxSignature {
			t.Fatalf("signed part / signature inconsistent: %v", err)
		}
		again, err := Encode(ix)
		if err != nil {
			t.Fatalf("accepted index does not encode: %v", err)
		}
		back, err := Decode(again)
		if err != nil {
			t.Fatalf("re-encoded index does not decode: %v", err)
		}
		back.Signed, ix.Signed = nil, nil
		if fmt.Sprint(*back) != fmt.Sprint(*ix) {
			t.Fatalf("round trip changed the index")
		}
	})
}

// FuzzParsePointer: ParsePointer never panics, and what it accepts is a complete pointer
// that encodes and parses back to itself.
func FuzzParsePointer(f *testing.F) {
	for _, s := range pointerSeeds() {
		f.Add(s.data)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePointer(b)
		if err != nil {
			return
		}
		if len(b) > MaxPointer || ValidName(p.Name) != nil {
			t.Fatalf("accepted %d bytes naming %q", len(b), p.Name)
		}
		back, err := ParsePointer(p.Encode())
		if err != nil || back != p {
			t.Fatalf("round trip: %+v, %v; want %+v", back, err, p)
		}
	})
}

type seed struct {
	name string
	data []byte
}

// indexSeeds are real encoded indexes (and near misses) for the fuzzer to start from.
func indexSeeds() []seed {
	enc := func(ix *Index) []byte {
		b, err := Encode(ix)
		if err != nil {
			panic(err)
		}
		return b
	}
	small := sampleIndex(3)
	signed := sampleIndex(8)
	signed.Signature = []byte("untrusted comment: signature\nRWQ...\n")
	zeros := &Index{Name: "zeros", Version: 1, Size: 2 << 20, Entries: []Entry{{Off: 0, Len: 2 << 20, Zero: true}}}
	empty := &Index{Name: "empty", Version: 1, Created: time.Unix(1, 0)}
	one := &Index{Name: "one", Version: 9, Size: 100, Entries: []Entry{{Len: 100, Stored: 90, ID: chunk.Sum([]byte("x"))}},
		Chunking: chunk.Params{Kind: chunk.KindFixed, Min: 512, Avg: 512, Max: 512, Align: 512}}
	secs := sectionsOf(small)
	withOptional := build([]rawSection{secs[0], {50, 0, []byte("optional")}, secs[1]})
	profiled := withProfile(sampleIndex(11))
	return append([]seed{
		{"small", enc(small)},
		{"signed", enc(signed)},
		{"zeros", enc(zeros)},
		{"empty", enc(empty)},
		{"one", enc(one)},
		{"medium", enc(sampleIndex(60))},
		{"optional-section", withOptional},
		{"profile", enc(profiled)},
		// Bodies in stored (uncompressed) zstd blocks without a checksum: mutations of these
		// reach the section and entry decoding instead of failing in zstd.
		{"uncompressed-frame", fileOf(1, rawFrame(bodyOf(sectionsOf(one))), nil)},
		{"uncompressed-small", fileOf(1, rawFrame(bodyOf(secs)), nil)},
		{"uncompressed-signed", fileOf(1, rawFrame(bodyOf(sectionsOf(signed))), signed.Signature)},
		{"uncompressed-zeros", fileOf(1, rawFrame(bodyOf(sectionsOf(zeros))), nil)},
		{"uncompressed-profile", fileOf(1, rawFrame(bodyOf(sectionsOf(profiled))), nil)},
		{"uncompressed-optional", fileOf(1, rawFrame(bodyOf([]rawSection{{50, 0, []byte("optional")}, secs[0], secs[1]})), nil)},
		{"truncated", enc(small)[:40]},
		{"count-huge", build([]rawSection{secs[0], {2, 1, []byte{0, 0, 0, 0, 0, 0, 0, 0x10}}})},
	}, hostileSeeds()...)
}

// rawFrame wraps b in a zstd frame of raw (stored) blocks, so the fuzzer can mutate body
// bytes directly instead of compressed ones.
func rawFrame(b []byte) []byte {
	// Magic, frame header descriptor 0x00 (no content size, no checksum, a window
	// descriptor follows), window descriptor 0x58 (2^(10+11) = 2 MiB).
	out := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58}
	for len(b) > 0 || len(out) == 6 {
		n := min(len(b), 128<<10-1)
		last := 0
		if n == len(b) {
			last = 1
		}
		h := uint32(n)<<3 | 0<<1 | uint32(last) // block type 0 = raw
		out = append(out, byte(h), byte(h>>8), byte(h>>16))
		out = append(out, b[:n]...)
		b = b[n:]
		if last == 1 {
			break
		}
	}
	return out
}

func pointerSeeds() []seed {
	ix := sampleIndex(3)
	p := NewPointer(ix, mustEncodeNoT(ix))
	return []seed{
		{"pointer", p.Encode()},
		{"extra-keys", append(p.Encode(), "signature RWQ\nexpires 0\n"...)},
		{"crlf", bytes.ReplaceAll(p.Encode(), []byte("\n"), []byte("\r\n"))},
		{"no-sum", []byte("nowhere-latest 1\nname a\nversion 1\n")},
	}
}

func mustEncodeNoT(ix *Index) []byte {
	b, err := Encode(ix)
	if err != nil {
		panic(err)
	}
	return b
}

// TestFuzzSeedsCommitted checks that every seed above is committed under testdata/fuzz
// (where go test -fuzz starts from) and that the committed real indexes still decode.
// NOWHERE_WRITE_FUZZ_SEEDS=1 go test -run FuzzSeedsCommitted ./internal/index rewrites them.
func TestFuzzSeedsCommitted(t *testing.T) {
	check := func(target string, seeds []seed, mustDecode func(name string, b []byte) error) {
		dir := filepath.Join("testdata", "fuzz", target)
		for _, s := range seeds {
			path := filepath.Join(dir, "seed-"+s.name)
			if os.Getenv("NOWHERE_WRITE_FUZZ_SEEDS") != "" {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", s.data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			b, err := corpusBytes(path)
			if err != nil {
				t.Fatalf("seed %s: %v (regenerate with NOWHERE_WRITE_FUZZ_SEEDS=1)", s.name, err)
			}
			if err := mustDecode(s.name, b); err != nil {
				t.Errorf("committed seed %s: %v", s.name, err)
			}
		}
	}
	hostile := hostileSeeds()
	check("FuzzDecodeIndex", indexSeeds(), func(name string, b []byte) error {
		if name == "truncated" || name == "count-huge" || slices.ContainsFunc(hostile, func(s seed) bool { return s.name == name }) {
			return nil // meant to be rejected
		}
		_, err := Decode(b)
		return err
	})
	check("FuzzParsePointer", pointerSeeds(), func(name string, b []byte) error {
		if name == "no-sum" {
			return nil
		}
		_, err := ParsePointer(b)
		return err
	})
}

// corpusBytes reads the single []byte value of a go test fuzz v1 corpus file.
func corpusBytes(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	lines := strings.SplitN(strings.TrimSpace(string(b)), "\n", 3)
	if len(lines) != 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "[]byte(") || !strings.HasSuffix(lines[1], ")") {
		return nil, fmt.Errorf("%s: not a one-value fuzz corpus file", path)
	}
	v, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
	return []byte(v), err
}
