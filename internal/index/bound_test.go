package index

import (
	"bytes"
	"encoding/binary"
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/nowhere-boot/nowhere/internal/chunk"
)

// emptyEntries is a chunk table declaring and holding n all-zero (invalid: empty)
// entries: the payload of a decompression bomb, which compresses to almost nothing.
func emptyEntries(n uint64) rawSection {
	p := binary.LittleEndian.AppendUint64(nil, n)
	return rawSection{sectionChunks, criticalFlag, append(p, make([]byte, n*entrySize)...)}
}

// contiguousEntries is a chunk table of n well-formed, contiguous 4 KiB data entries
// that all name one chunk.
func contiguousEntries(n uint64) rawSection {
	le := binary.LittleEndian
	p := le.AppendUint64(nil, n)
	id := chunk.Sum([]byte("one chunk"))
	for i := range n {
		p = le.AppendUint64(p, i*4096)
		p = le.AppendUint32(p, 4096)
		p = le.AppendUint32(p, 100)
		p = append(p, entryData)
		p = append(p, id[:]...)
	}
	return rawSection{sectionChunks, criticalFlag, p}
}

// hostileSeeds are crafted index files that Decode must refuse, with a word of each
// refusal. They are fuzz seeds too.
func hostileSeeds() []seed {
	hdr := func(size int64) rawSection {
		return rawSection{sectionHeader, criticalFlag, headerPayload(&Index{Name: "x", Version: 1, Size: size})}
	}
	valid := sampleIndex(3)
	good := compress(bodyOf(sectionsOf(valid)))
	// A frame header with a 64 MiB window (descriptor 0x80: 2^(10+16)), one empty raw
	// last block.
	bigWindow := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x80, 0x01, 0x00, 0x00}
	return []seed{
		// 70 MiB of empty entries in a few KiB: more than MaxBody, refused at the table's
		// header.
		{"bomb", build([]rawSection{hdr(1), emptyEntries(70 << 20 / entrySize)})},
		// 16 MiB of them: within MaxBody, refused at entry 0.
		{"bomb-small", build([]rawSection{hdr(1), emptyEntries(16 << 20 / entrySize)})},
		// A count that claims far more than the table holds.
		{"count-900M", build([]rawSection{hdr(1 << 16), {sectionChunks, criticalFlag,
			binary.LittleEndian.AppendUint64(nil, 900_000_000)}})},
		// Well-formed contiguous entries that do not add up to the image size.
		{"size-mismatch", build([]rawSection{hdr(1), contiguousEntries(1000)})},
		// A valid body followed by a second frame.
		{"two-frames", fileOf(FormatVersion, append(append([]byte(nil), good...), good...), nil)},
		{"big-window", fileOf(FormatVersion, bigWindow, nil)},
		// An optional section that claims 1 TiB.
		{"section-huge", sectionHugeFile()},
	}
}

// TestDecodeRefusesHostileIndexesEarly: each crafted index is refused with ErrFormat and
// the reason, and decoding it allocates a bounded amount (the decoder's window and
// buffers), not what the index declares or expands to.
func TestDecodeRefusesHostileIndexesEarly(t *testing.T) {
	wants := map[string]string{
		"bomb":          "an index body may hold",
		"bomb-small":    "entry 0 is empty",
		"count-900M":    "declares 900000000 entries",
		"size-mismatch": "image size is 1",
		"two-frames":    "after the zstd frame",
		"big-window":    "window",
		"section-huge":  "more than the",
	}
	for _, s := range hostileSeeds() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		ix, err := Decode(s.data)
		runtime.ReadMemStats(&after)
		if err == nil || ix != nil || !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), wants[s.name]) {
			t.Errorf("%s: Decode = %v, want ErrFormat mentioning %q", s.name, err, wants[s.name])
			continue
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error of several lines: %q", s.name, err)
		}
		alloc := after.TotalAlloc - before.TotalAlloc
		t.Logf("%s (%d bytes): %d KiB allocated: %v", s.name, len(s.data), alloc>>10, err)
		if alloc > 16<<20 {
			t.Errorf("%s: decoding allocated %d MiB, want at most 16 (the window and buffers)", s.name, alloc>>20)
		}
	}
}

// sectionHugeFile is an index whose body is a header and then an optional section
// declaring 1 TiB, with nothing after it.
func sectionHugeFile() []byte {
	le := binary.LittleEndian
	body := bodyOf([]rawSection{{sectionHeader, criticalFlag, headerPayload(&Index{Name: "x", Version: 1})}})
	body = le.AppendUint32(body, 50)
	body = le.AppendUint32(body, 0)
	body = le.AppendUint64(body, 1<<40)
	return fileOf(FormatVersion, compress(body), nil)
}

// TestDecodeLargeIndexTwoPasses: a valid index far larger than the decoder's window
// decodes to itself (the second pass reads what the first one counted).
func TestDecodeLargeIndexTwoPasses(t *testing.T) {
	ix := sampleIndex(300_000) // 14.7 MB of body, more than the 8 MiB window
	file := mustEncode(t, ix)
	var h zstd.Header
	if err := h.Decode(file[preambleSize:]); err != nil || h.WindowSize > MaxWindow {
		t.Fatalf("Encode wrote a window of %d bytes (%v), want at most %d", h.WindowSize, err, MaxWindow)
	}
	got, err := Decode(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Entries) != len(ix.Entries) || got.Entries[len(ix.Entries)-1] != ix.Entries[len(ix.Entries)-1] || got.Size != ix.Size {
		t.Fatalf("decoded %d entries, want %d", len(got.Entries), len(ix.Entries))
	}
	if !bytes.Equal(got.Signed, file[:len(file)-4]) {
		t.Fatal("signed part is not the file before its signature block")
	}
}
