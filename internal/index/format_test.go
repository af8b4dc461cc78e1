package index

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
)

func equalIndex(t *testing.T, got, want *Index) {
	t.Helper()
	g, w := *got, *want
	g.Signed, w.Signed = nil, nil
	if len(g.Entries) == 0 && len(w.Entries) == 0 {
		g.Entries, w.Entries = nil, nil
	}
	if len(g.Signature) == 0 && len(w.Signature) == 0 {
		g.Signature, w.Signature = nil, nil
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("decoded index differs:\n got  %+v\n want %+v", summary(&g), summary(&w))
	}
}

func summary(ix *Index) string {
	return fmt.Sprintf("%s v%d size %d %s created %s expires %s, %d entries, %d signature bytes",
		ix.Name, ix.Version, ix.Size, ix.Chunking, ix.Created, ix.Expires, len(ix.Entries), len(ix.Signature))
}

func TestRoundTrip(t *testing.T) {
	signed := sampleIndex(100)
	signed.Signature = []byte("untrusted comment: a signature block is opaque bytes to the format\x00\xff")
	noTimes := sampleIndex(10)
	noTimes.Created, noTimes.Expires = time.Time{}, time.Time{}
	fixed := sampleIndex(20)
	fixed.Chunking = chunk.Params{Kind: chunk.KindFixed, Min: 64 << 10, Avg: 64 << 10, Max: 64 << 10, Align: 64 << 10}
	fixed.Version = math.MaxUint64
	cases := map[string]*Index{
		"sample":      sampleIndex(100),
		"signed":      signed,
		"no times":    noTimes,
		"fixed":       fixed,
		"empty image": {Name: "e", Version: 1, Chunking: chunk.Params{Kind: chunk.KindCDC, Min: 64, Avg: 64, Max: 64, Align: 1}},
		"only zeros":  {Name: "z", Version: 1, Size: 3 << 30, Entries: []Entry{{Off: 0, Len: 1 << 30, Zero: true}, {Off: 1 << 30, Len: 1 << 30, Zero: true}, {Off: 2 << 30, Len: 1 << 30, Zero: true}}},
		"max chunk":   {Name: "m", Version: 7, Size: chunk.MaxSize, Entries: []Entry{{Len: chunk.MaxSize, Stored: 1, ID: chunk.Sum(nil)}}},
		"long name":   {Name: strings.Repeat("a", 128), Version: 1},
		"large table": sampleIndex(200000),
		"before 1970": {Name: "old", Version: 1, Created: time.Unix(-86400, 0).UTC()},
	}
	for name, ix := range cases {
		t.Run(name, func(t *testing.T) {
			file := mustEncode(t, ix)
			got, err := Decode(file)
			if err != nil {
				t.Fatal(err)
			}
			equalIndex(t, got, ix)
			sp, err := SignedPart(file)
			if err != nil || !bytes.Equal(got.Signed, sp) {
				t.Fatalf("Signed is not SignedPart(file): %v", err)
			}
			if name == "large table" {
				t.Logf("%d entries: %d bytes encoded (%.1f bytes per entry)", len(ix.Entries), len(file), float64(len(file))/float64(len(ix.Entries)))
			}
		})
	}
}

// The encoded bytes are exactly what docs/format.md describes: checked with offsets taken
// from the document, not from the code.
func TestEncodeLayout(t *testing.T) {
	ix := sampleIndex(7)
	ix.Signature = []byte("SIG")
	file := mustEncode(t, ix)
	le := binary.LittleEndian
	if string(file[0:8]) != "nowhidx\x00" {
		t.Fatalf("magic %q", file[0:8])
	}
	if v := le.Uint16(file[8:10]); v != 1 {
		t.Fatalf("format version %d", v)
	}
	if !bytes.Equal(file[10:16], make([]byte, 6)) {
		t.Fatalf("reserved bytes %x", file[10:16])
	}
	n := le.Uint64(file[16:24])
	if 24+n+4+3 != uint64(len(file)) {
		t.Fatalf("body length %d does not fit a %d-byte file", n, len(file))
	}
	if !bytes.Equal(file[24:28], []byte{0x28, 0xb5, 0x2f, 0xfd}) {
		t.Fatalf("body does not start with the zstd frame magic: %x", file[24:28])
	}
	if sl := le.Uint32(file[24+n:]); sl != 3 || string(file[28+n:]) != "SIG" {
		t.Fatalf("signature block: length %d, bytes %q", sl, file[28+n:])
	}
	body := decompress(t, file[24:24+n])
	if want := bodyOf(sectionsOf(ix)); !bytes.Equal(body, want) {
		t.Fatalf("body is not header section + chunk table as documented:\n got  %x\n want %x", body, want)
	}
	// Spot checks at documented offsets, in case the helper and Encode share a mistake.
	if le.Uint32(body[0:]) != 1 || le.Uint32(body[4:]) != 1 {
		t.Fatal("first section is not a critical header (type 1, flags 1)")
	}
	hl := le.Uint64(body[8:])
	h := body[16 : 16+hl]
	if hl != 54+uint64(len(ix.Name)) || le.Uint64(h[0:]) != 42 || int64(le.Uint64(h[8:])) != ix.Created.Unix() ||
		int64(le.Uint64(h[16:])) != ix.Expires.Unix() || int64(le.Uint64(h[24:])) != ix.Size || h[32] != 2 ||
		le.Uint32(h[36:]) != 16<<10 || le.Uint32(h[40:]) != 64<<10 || le.Uint32(h[44:]) != 256<<10 ||
		le.Uint32(h[48:]) != 4096 || le.Uint16(h[52:]) != uint16(len(ix.Name)) || string(h[54:]) != ix.Name {
		t.Fatalf("header payload %x", h)
	}
	c := body[16+hl:]
	if le.Uint32(c[0:]) != 2 || le.Uint32(c[4:]) != 1 || le.Uint64(c[8:]) != 8+7*49 || le.Uint64(c[16:]) != 7 {
		t.Fatalf("chunk table section header %x", c[:24])
	}
	for i, e := range ix.Entries {
		r := c[24+49*i : 24+49*(i+1)]
		kind := byte(0)
		if e.Zero {
			kind = 1
		}
		if int64(le.Uint64(r)) != e.Off || le.Uint32(r[8:]) != e.Len || le.Uint32(r[12:]) != e.Stored || r[16] != kind || !bytes.Equal(r[17:], e.ID[:]) {
			t.Fatalf("entry %d record %x", i, r)
		}
	}
}

func TestEncodeRejects(t *testing.T) {
	bad := func(f func(ix *Index)) *Index { ix := sampleIndex(10); f(ix); return ix }
	cases := map[string]*Index{
		"empty name":  bad(func(ix *Index) { ix.Name = "" }),
		"slash name":  bad(func(ix *Index) { ix.Name = "a/b" }),
		"dotdot name": bad(func(ix *Index) { ix.Name = ".." }),
		"gap":         bad(func(ix *Index) { ix.Entries[3].Off++ }),
		"wrong size":  bad(func(ix *Index) { ix.Size++ }),
		"zero w/ id":  bad(func(ix *Index) { ix.Entries[4].ID[0] = 1 }),
		"no id":       bad(func(ix *Index) { ix.Entries[0].ID = chunk.ID{} }),
		// One 68 KiB chunk declared as 1 GiB stored made a client hold 1-1.6 GB.
		"stored size above the codec's bound": bad(func(ix *Index) { ix.Entries[0].Stored = 1 << 30 }),
	}
	for name, ix := range cases {
		if _, err := Encode(ix); err == nil {
			t.Errorf("%s: encoded", name)
		}
	}
}

// mutate returns a copy of b with f applied.
func mutate(b []byte, f func([]byte) []byte) []byte { return f(bytes.Clone(b)) }

func TestDecodeRejects(t *testing.T) {
	ix := sampleIndex(12)
	good := build(sectionsOf(ix))
	if _, err := Decode(good); err != nil {
		t.Fatalf("the test's own encoding is not accepted: %v", err)
	}
	le := binary.LittleEndian
	hdr := headerPayload(ix)
	ents := ix.Entries
	withEntries := func(f func(es []Entry) []Entry) []byte {
		es := f(append([]Entry(nil), ents...))
		return build([]rawSection{{1, 1, hdr}, {2, 1, chunksPayload(uint64(len(es)), es)}})
	}
	withHeader := func(f func(ix *Index)) []byte {
		c := *ix
		f(&c)
		return build([]rawSection{{1, 1, headerPayload(&c)}, {2, 1, chunksPayload(uint64(len(ents)), ents)}})
	}
	cases := map[string][]byte{ // name -> file; each must fail with ErrFormat
		"empty":                    nil,
		"bad magic":                mutate(good, func(b []byte) []byte { b[0] = 'N'; return b }),
		"casync magic":             mutate(good, func(b []byte) []byte { copy(b, "\xca\x1a\x52\x00\x00\x00\x00\x00"); return b }),
		"version 0":                mutate(good, func(b []byte) []byte { b[8] = 0; return b }),
		"version 2":                mutate(good, func(b []byte) []byte { b[8] = 2; return b }),
		"version 257":              mutate(good, func(b []byte) []byte { b[9] = 1; return b }),
		"body beyond file":         mutate(good, func(b []byte) []byte { le.PutUint64(b[16:], uint64(len(b))); return b }),
		"body length 2^64-1":       mutate(good, func(b []byte) []byte { le.PutUint64(b[16:], math.MaxUint64); return b }),
		"body length 2^63":         mutate(good, func(b []byte) []byte { le.PutUint64(b[16:], 1<<63); return b }),
		"no signature block":       good[:len(good)-4],
		"signature longer":         mutate(good, func(b []byte) []byte { le.PutUint32(b[len(b)-4:], 1); return b }),
		"trailing bytes":           append(bytes.Clone(good), 0),
		"signature above max":      fileOf(1, compress(bodyOf(sectionsOf(ix))), make([]byte, MaxSignature+1)),
		"body not zstd":            fileOf(1, []byte("definitely not a zstd frame"), nil),
		"body zero length":         fileOf(1, nil, nil),
		"body empty frame":         fileOf(1, compress(nil), nil),
		"body corrupt":             mutate(good, func(b []byte) []byte { b[40] ^= 0xff; return b }),
		"no header":                build([]rawSection{{2, 1, chunksPayload(uint64(len(ents)), ents)}}),
		"no chunk table":           build([]rawSection{{1, 1, hdr}}),
		"two headers":              build([]rawSection{{1, 1, hdr}, {1, 1, hdr}, {2, 1, chunksPayload(uint64(len(ents)), ents)}}),
		"two chunk tables":         build(append(sectionsOf(ix), rawSection{2, 1, chunksPayload(uint64(len(ents)), ents)})),
		"unknown critical section": build(append(sectionsOf(ix), rawSection{77, 1, []byte("must understand")})),
		"critical among flags":     build(append(sectionsOf(ix), rawSection{77, 0xff, nil})),
		"truncated section header": fileOf(1, compress(append(bodyOf(sectionsOf(ix)), 1, 0, 0, 0, 0)), nil),
		"section beyond body":      fileOf(1, compress(append(bodyOf(sectionsOf(ix)), bodyOf([]rawSection{{99, 0, nil}})[:8]...)), nil),
		"section length huge": fileOf(1, compress(mutate(bodyOf(sectionsOf(ix)), func(b []byte) []byte {
			le.PutUint64(b[8:], math.MaxUint64)
			return b
		})), nil),
		"header short":            build([]rawSection{{1, 1, hdr[:53]}, {2, 1, chunksPayload(uint64(len(ents)), ents)}}),
		"header name cut":         build([]rawSection{{1, 1, hdr[:len(hdr)-1]}, {2, 1, chunksPayload(uint64(len(ents)), ents)}}),
		"header name empty":       withHeader(func(ix *Index) { ix.Name = "" }),
		"header name traversal":   withHeader(func(ix *Index) { ix.Name = "../../etc" }),
		"header name NUL":         withHeader(func(ix *Index) { ix.Name = "a\x00b" }),
		"header name 129":         withHeader(func(ix *Index) { ix.Name = strings.Repeat("n", 129) }),
		"image size absurd":       withHeader(func(ix *Index) { ix.Size = 1<<60 + 1 }),
		"image size negative":     withHeader(func(ix *Index) { ix.Size = -1 }),
		"size larger than table":  withHeader(func(ix *Index) { ix.Size += 4096 }),
		"size smaller than table": withHeader(func(ix *Index) { ix.Size -= 1 }),
		"no entry count":          build([]rawSection{{1, 1, hdr}, {2, 1, []byte{1, 2, 3}}}),
		"count 2^60, no entries":  build([]rawSection{{1, 1, hdr}, {2, 1, le.AppendUint64(nil, 1<<60)}}),
		"count 2^60, 3 entries":   build([]rawSection{{1, 1, hdr}, {2, 1, chunksPayload(1<<60, ents[:3])}}),
		"count 2^64-1":            build([]rawSection{{1, 1, hdr}, {2, 1, chunksPayload(math.MaxUint64, ents)}}),
		"count one more":          build([]rawSection{{1, 1, hdr}, {2, 1, chunksPayload(uint64(len(ents)+1), ents)}}),
		"count one less":          build([]rawSection{{1, 1, hdr}, {2, 1, chunksPayload(uint64(len(ents)-1), ents)}}),
		"partial record":          build([]rawSection{{1, 1, hdr}, {2, 1, append(chunksPayload(uint64(len(ents)), ents), 0)}}),
		"first entry not at 0":    withEntries(func(es []Entry) []Entry { return es[1:] }),
		"gap":                     withEntries(func(es []Entry) []Entry { es[5].Off += 4096; return es }),
		"overlap":                 withEntries(func(es []Entry) []Entry { es[5].Off -= 1; return es }),
		"swapped":                 withEntries(func(es []Entry) []Entry { es[2], es[3] = es[3], es[2]; return es }),
		"negative offset":         withEntries(func(es []Entry) []Entry { es[0].Off = -1; return es }),
		"empty entry": withEntries(func(es []Entry) []Entry {
			return append([]Entry{{Off: 0, Len: 0, Stored: 1, ID: chunk.Sum(nil)}}, es...)
		}),
		"zero entry with ID":     withEntries(func(es []Entry) []Entry { es[4].ID[31] = 1; return es }),
		"zero entry with stored": withEntries(func(es []Entry) []Entry { es[4].Stored = 1; return es }),
		"data entry without ID":  withEntries(func(es []Entry) []Entry { es[0].ID = chunk.ID{}; return es }),
		"data entry stored 0":    withEntries(func(es []Entry) []Entry { es[0].Stored = 0; return es }),
		"data entry > MaxSize": build([]rawSection{{1, 1, headerPayload(&Index{Name: "x", Size: chunk.MaxSize + 1})},
			{2, 1, chunksPayload(1, []Entry{{Len: chunk.MaxSize + 1, Stored: 10, ID: chunk.Sum(nil)}})}}),
		"unknown entry kind": build([]rawSection{{1, 1, hdr}, {2, 1, mutate(chunksPayload(uint64(len(ents)), ents), func(b []byte) []byte {
			b[8+16] = 2
			return b
		})}}),
	}
	for name, file := range cases {
		t.Run(name, func(t *testing.T) {
			ix, err := Decode(file)
			if err == nil {
				t.Fatalf("accepted: %s", summary(ix))
			}
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not wrap ErrFormat", err)
			}
			if ix != nil {
				t.Fatal("index returned with the error")
			}
		})
	}
}

// A count field claiming 2^60 entries is refused before anything is allocated for them.
func TestDecodeAbsurdCountAllocatesNothing(t *testing.T) {
	ix := sampleIndex(3)
	file := build([]rawSection{{1, 1, headerPayload(ix)}, {2, 1, binary.LittleEndian.AppendUint64(nil, 1<<60)}})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < 10; i++ {
		if _, err := Decode(file); !errors.Is(err, ErrFormat) {
			t.Fatalf("accepted or wrong error: %v", err)
		}
	}
	runtime.ReadMemStats(&after)
	if a := after.TotalAlloc - before.TotalAlloc; a > 10<<20 {
		t.Fatalf("10 decodes of a %d-byte file claiming 2^60 entries allocated %d MiB", len(file), a>>20)
	}
}

func TestDecodeEveryTruncation(t *testing.T) {
	ix := sampleIndex(6)
	ix.Signature = []byte("signature bytes")
	file := mustEncode(t, ix)
	for n := 0; n < len(file); n++ {
		if got, err := Decode(file[:n]); !errors.Is(err, ErrFormat) || got != nil {
			t.Fatalf("first %d of %d bytes: %v", n, len(file), err)
		}
	}
	// The same for the body: every truncation of the decompressed body, recompressed.
	body := bodyOf(sectionsOf(ix))
	for n := 0; n < len(body); n++ {
		if _, err := Decode(fileOf(1, compress(body[:n]), nil)); !errors.Is(err, ErrFormat) {
			t.Fatalf("body cut to %d of %d bytes: %v", n, len(body), err)
		}
	}
}

func TestDecodeSkipsUnknownOptionalSections(t *testing.T) {
	ix := sampleIndex(9)
	secs := sectionsOf(ix)
	file := build([]rawSection{
		{100, 0, []byte("a later section")},
		secs[0],
		{101, 2, bytes.Repeat([]byte{0xee}, 1000)}, // flags other than "critical" do not matter
		secs[1],
		{102, 0, nil},
	})
	got, err := Decode(file)
	if err != nil {
		t.Fatal(err)
	}
	equalIndex(t, got, ix)
}

// The header may grow: a reader takes the fields it knows and ignores bytes after the
// last of them (the architecture, which follows the name; a length of 0 is no arch).
func TestDecodeHeaderMayGrow(t *testing.T) {
	for _, arch := range []string{"", "arm64"} {
		ix := sampleIndex(4)
		ix.Arch = arch
		h := headerPayload(ix)
		if arch == "" {
			h = append(h, 0)
		}
		file := build([]rawSection{{1, 1, append(h, "future fields"...)}, sectionsOf(ix)[1]})
		got, err := Decode(file)
		if err != nil {
			t.Fatal(err)
		}
		equalIndex(t, got, ix)
	}
}

func TestSignedPartAndWithSignature(t *testing.T) {
	ix := sampleIndex(20)
	unsigned := mustEncode(t, ix)
	sp, err := SignedPart(unsigned)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(unsigned, append(bytes.Clone(sp), 0, 0, 0, 0)) {
		t.Fatal("an unsigned file is not SignedPart + a zero-length signature block")
	}
	sig := bytes.Repeat([]byte("s"), 100)
	signed, err := WithSignature(unsigned, sig)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(signed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Signature, sig) || !bytes.Equal(got.Signed, sp) {
		t.Fatal("signature or signed part wrong after WithSignature")
	}
	ix.Signature = sig
	equalIndex(t, got, ix)
	// Replacing the signature keeps the signed bytes; so does removing it.
	again, _ := WithSignature(signed, []byte("other"))
	if sp2, _ := SignedPart(again); !bytes.Equal(sp2, sp) {
		t.Fatal("SignedPart changed with the signature")
	}
	if plain, _ := WithSignature(signed, nil); !bytes.Equal(plain, unsigned) {
		t.Fatal("removing the signature does not give the unsigned file back")
	}
	// The signature covers every header field: changing any of them changes SignedPart.
	for name, f := range map[string]func(*Index){
		"name":     func(ix *Index) { ix.Name = "other" },
		"version":  func(ix *Index) { ix.Version++ },
		"created":  func(ix *Index) { ix.Created = ix.Created.Add(time.Second) },
		"expires":  func(ix *Index) { ix.Expires = ix.Expires.Add(time.Second) },
		"chunking": func(ix *Index) { ix.Chunking.Align = 1 },
		"entry":    func(ix *Index) { ix.Entries[0].ID[0] ^= 1 },
	} {
		c := sampleIndex(20)
		f(c)
		other, _ := SignedPart(mustEncode(t, c))
		if bytes.Equal(other, sp) {
			t.Errorf("changing the %s does not change the signed bytes", name)
		}
	}
	for name, b := range map[string][]byte{
		"short":     unsigned[:10],
		"bad magic": mutate(unsigned, func(b []byte) []byte { b[1] = 'X'; return b }),
		"truncated": unsigned[:30],
	} {
		if _, err := SignedPart(b); !errors.Is(err, ErrFormat) {
			t.Errorf("SignedPart(%s): %v", name, err)
		}
		if _, err := WithSignature(b, sig); !errors.Is(err, ErrFormat) {
			t.Errorf("WithSignature(%s): %v", name, err)
		}
	}
}
