package chunk

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// reference decodes like any zstd tool would, with a limit so a bomb cannot exhaust the
// fuzzer's memory, and, like Decode, without checking the frame's xxhash64: Decode checks
// the SHA-256 name instead, so a frame with a wrong checksum but the named content is a
// chunk (testdata/fuzz/FuzzChunkDecode/bad-frame-checksum).
var reference, _ = zstd.NewReader(nil, zstd.WithDecoderMaxMemory(2*MaxSize), zstd.WithDecoderConcurrency(1),
	zstd.IgnoreChecksum(true))

// FuzzChunkDecode: Decode and DecodeUnknown never panic and never return bytes that are
// not exactly the content the ID names. With nameByContent the ID is taken from what the
// frame really decodes to, so the fuzzer also explores the paths that succeed.
func FuzzChunkDecode(f *testing.F) {
	for _, s := range chunkSeeds() {
		f.Add(s.stored, s.size, s.byContent, s.id)
	}
	f.Fuzz(func(t *testing.T, stored []byte, size int, nameByContent bool, idBytes []byte) {
		var id ID
		copy(id[:], idBytes)
		plain, refErr := reference.DecodeAll(stored, nil)
		if nameByContent && refErr == nil {
			id = Sum(plain)
		}
		got, err := Decode(nil, id, size, stored)
		if err != nil {
			if got != nil || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Decode: %d bytes with error %v", len(got), err)
			}
		} else if len(got) != size || Sum(got) != id || refErr != nil || !bytes.Equal(got, plain) {
			t.Fatalf("Decode returned %d bytes that are not the %d-byte chunk %s", len(got), size, id)
		}
		got, err = DecodeUnknown(id, stored)
		if err != nil {
			if got != nil || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("DecodeUnknown: %d bytes with error %v", len(got), err)
			}
		} else if Sum(got) != id || len(got) == 0 || len(got) > MaxSize || refErr != nil || !bytes.Equal(got, plain) {
			t.Fatalf("DecodeUnknown returned %d bytes that are not chunk %s", len(got), id)
		}
	})
}

type chunkSeed struct {
	name      string
	stored    []byte
	size      int
	byContent bool
	id        []byte
}

func chunkSeeds() []chunkSeed {
	text := bytes.Repeat([]byte("nowhere chunk "), 300)
	rnd := randBytes(1, 5000)
	zeros := make([]byte, 64<<10)
	var stream bytes.Buffer
	w, _ := zstd.NewWriter(&stream)
	_, _ = w.Write(make([]byte, 1<<20))
	_ = w.Close()
	id := func(b []byte) []byte { s := Sum(b); return s[:] }
	return []chunkSeed{
		{"text", Encode(nil, text), len(text), true, nil},
		{"random", Encode(nil, rnd), len(rnd), true, nil},
		{"zeros", Encode(nil, zeros), len(zeros), false, id(zeros)},
		{"wrong-size", Encode(nil, text), len(text) - 1, true, nil},
		{"wrong-id", Encode(nil, text), len(text), false, id(rnd)},
		{"bomb", stream.Bytes(), 4096, true, nil},
		{"one-byte", Encode(nil, []byte{7}), 1, true, nil},
		{"empty", Encode(nil, nil), 0, true, nil},
		{"garbage", []byte("not zstd"), 8, false, nil},
	}
}

// TestChunkFuzzSeedsCommitted checks that every seed above is committed under
// testdata/fuzz (where go test -fuzz starts from) and that the committed real chunks
// still decode. NOWHERE_WRITE_FUZZ_SEEDS=1 go test -run ChunkFuzzSeeds ./internal/chunk
// rewrites them.
func TestChunkFuzzSeedsCommitted(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzChunkDecode")
	for _, s := range chunkSeeds() {
		path := filepath.Join(dir, "seed-"+s.name)
		if os.Getenv("NOWHERE_WRITE_FUZZ_SEEDS") != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nint(%d)\nbool(%v)\n[]byte(%q)\n", s.stored, s.size, s.byContent, s.id)
			if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("seed %s: %v (regenerate with NOWHERE_WRITE_FUZZ_SEEDS=1)", s.name, err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) != 5 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "[]byte(") || !strings.HasPrefix(lines[2], "int(") {
			t.Fatalf("seed %s: not a FuzzChunkDecode corpus file", s.name)
		}
		stored, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
		if err != nil {
			t.Fatalf("seed %s: %v", s.name, err)
		}
		size, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(lines[2], "int("), ")"))
		if err != nil {
			t.Fatalf("seed %s: %v", s.name, err)
		}
		// The seeds made from real chunks must still be real chunks.
		if s.byContent && s.name != "wrong-size" && s.name != "bomb" && s.name != "empty" {
			plain, err := reference.DecodeAll([]byte(stored), nil)
			if err != nil {
				t.Fatalf("seed %s: %v", s.name, err)
			}
			if _, err := Decode(nil, Sum(plain), size, []byte(stored)); err != nil {
				t.Errorf("committed seed %s no longer decodes: %v", s.name, err)
			}
		}
	}
}
