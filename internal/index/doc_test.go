package index

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
)

// The worked example in docs/format.md: a 69,701-byte image of one 4 KiB chunk, a 64 KiB
// zero run and a 69-byte tail chunk (Stored: the sizes chunk.Encode gives them).
var (
	docHead = bytes.Repeat([]byte("n"), 4096)
	docTail = []byte("nowhere: Linux that boots from disk images streamed over plain HTTP.\n")
)

func docExample() *Index {
	return &Index{
		Name:     "demo",
		Version:  3,
		Created:  time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC),
		Size:     4096 + 65536 + int64(len(docTail)),
		Chunking: chunk.Params{Kind: chunk.KindCDC, Min: 16 << 10, Avg: 64 << 10, Max: 256 << 10, Align: 4096},
		Entries: []Entry{
			{Off: 0, Len: 4096, Stored: 15, ID: chunk.Sum(docHead)},
			{Off: 4096, Len: 65536, Zero: true},
			{Off: 4096 + 65536, Len: uint32(len(docTail)), Stored: 82, ID: chunk.Sum(docTail)},
		},
	}
}

// docBlock returns the fenced block that follows <!-- example:NAME --> in docs/format.md.
func docBlock(t *testing.T, doc, name string) string {
	t.Helper()
	marker := "<!-- example:" + name + " -->"
	i := strings.Index(doc, marker)
	if i < 0 {
		t.Fatalf("docs/format.md has no %s", marker)
	}
	rest := doc[i+len(marker):]
	start := strings.Index(rest, "```")
	rest = rest[start+3:]
	rest = rest[strings.Index(rest, "\n")+1:]
	end := strings.Index(rest, "```")
	return rest[:end]
}

// parseDump reads bytes back from the hex dump format of encoding/hex.Dump (hexdump -C).
func parseDump(t *testing.T, dump string) []byte {
	t.Helper()
	var out []byte
	for _, line := range strings.Split(strings.TrimSpace(dump), "\n") {
		if len(line) < 10 {
			t.Fatalf("bad dump line %q", line)
		}
		area := line[8:min(len(line), 58)]
		for _, f := range strings.Fields(area) {
			b, err := hex.DecodeString(f)
			if err != nil || len(b) != 1 {
				t.Fatalf("bad dump field %q in %q", f, line)
			}
			out = append(out, b[0])
		}
	}
	return out
}

// The example in docs/format.md is real: its bytes decode to the index it describes, and
// its body is byte for byte what Encode compresses.
func TestFormatDocExample(t *testing.T) {
	ix := docExample()
	if os.Getenv("NOWHERE_PRINT_DOC_EXAMPLE") != "" {
		file := mustEncode(t, ix)
		body := decompress(t, file[24:len(file)-4])
		fmt.Printf("body (%d bytes):\n%s\nfile (%d bytes):\n%s\nlatest:\n%s\nhead chunk %s stored %d, tail chunk %s stored %d\n",
			len(body), hex.Dump(body), len(file), hex.Dump(file), NewPointer(ix, file).Encode(),
			chunk.Sum(docHead), len(chunk.Encode(nil, docHead)), chunk.Sum(docTail), len(chunk.Encode(nil, docTail)))
	}
	raw, err := os.ReadFile("../../docs/format.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	body := parseDump(t, docBlock(t, doc, "body"))
	if want := bodyOf(sectionsOf(ix)); !bytes.Equal(body, want) {
		t.Fatalf("the documented body is not the example's body:\n%s", hex.Dump(want))
	}
	enc := mustEncode(t, ix)
	if got := decompress(t, enc[24:len(enc)-4]); !bytes.Equal(got, body) {
		t.Fatal("Encode's body differs from the documented one")
	}
	file := parseDump(t, docBlock(t, doc, "file"))
	got, err := Decode(file)
	if err != nil {
		t.Fatalf("the documented file does not decode: %v", err)
	}
	equalIndex(t, got, ix)
	if !bytes.Equal(decompress(t, file[24:len(file)-4]), body) {
		t.Fatal("the documented file's body is not the documented body")
	}
	if latest := docBlock(t, doc, "latest"); latest != string(NewPointer(ix, file).Encode()) {
		t.Fatalf("the documented latest pointer does not pin the documented file:\n%s", NewPointer(ix, file).Encode())
	}
	// The document says these are the entries pack makes for the example image.
	img := append(append(bytes.Clone(docHead), make([]byte, 65536)...), docTail...)
	sp, _ := chunk.ParseSpec(chunk.DefaultSpec)
	c, _ := sp.New(chunk.BlockAlign)
	s := chunk.NewSplitter(bytes.NewReader(img), c)
	for i, e := range ix.Entries {
		p, err := s.Next()
		if err != nil || p.Off != e.Off || p.Len != int(e.Len) || p.Zero != e.Zero || (!p.Zero && chunk.Sum(p.Data) != e.ID) {
			t.Fatalf("the splitter's piece %d is %+v (%v), the example's entry %+v", i, p, err, e)
		}
	}
	if p, err := s.Next(); err != io.EOF {
		t.Fatalf("the splitter makes more pieces than the example: %+v", p)
	}
}
