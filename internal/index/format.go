package index

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/nowhere-boot/nowhere/internal/chunk"
)

// The encoding; docs/format.md is the reference and must change with this file.
const (
	Magic         = "nowhidx\x00"
	FormatVersion = 1

	preambleSize = 24
	// MaxBody bounds the decompressed body: 1.37 million entries (an image of 100 GB in
	// the default chunking), far beyond any image booted or mounted over HTTP. It is what
	// keeps decoding any index, the largest valid one included, under the memory bound of
	// docs/format.md section 3.8: its file (up to MaxFile) plus 56 bytes of Entry per
	// 49 bytes of body.
	MaxBody = 64 << 20
	// MaxFile bounds an index file a reader fetches or reads: the largest body (zstd
	// adds a little to what it cannot compress), the largest signature, the preamble.
	MaxFile = MaxBody + MaxSignature + 1<<20
	// MaxSignature bounds the signature block.
	MaxSignature = 64 << 10

	sectionHeader  = 1
	sectionChunks  = 2
	sectionProfile = 3 // optional: written without the critical flag
	// criticalFlag marks a section a reader must understand to use the index.
	criticalFlag = 1

	entrySize = 8 + 4 + 4 + 1 + chunk.IDSize
	entryData = 0
	entryZero = 1
)

// ErrFormat is wrapped by every decoding error.
var ErrFormat = errors.New("not a valid nowhere index")

var (
	encOnce sync.Once
	enc     *zstd.Encoder
)

// encoder is the body's encoder: its window is 8 MiB (MaxWindow), what readers accept.
func encoder() *zstd.Encoder {
	encOnce.Do(func() {
		enc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBetterCompression), zstd.WithWindowSize(MaxWindow))
	})
	return enc
}

// Encode returns the index file: preamble, compressed body and ix.Signature.
func Encode(ix *Index) ([]byte, error) {
	if err := ValidName(ix.Name); err != nil {
		return nil, err
	}
	if err := ValidArch(ix.Arch); err != nil {
		return nil, err
	}
	if err := ix.check(); err != nil {
		return nil, err
	}
	var body bytes.Buffer
	le := binary.LittleEndian

	var h []byte
	h = le.AppendUint64(h, ix.Version)
	h = le.AppendUint64(h, uint64(unixOrZero(ix.Created)))
	h = le.AppendUint64(h, uint64(unixOrZero(ix.Expires)))
	h = le.AppendUint64(h, uint64(ix.Size))
	h = append(h, byte(ix.Chunking.Kind), 0, 0, 0)
	h = le.AppendUint32(h, ix.Chunking.Min)
	h = le.AppendUint32(h, ix.Chunking.Avg)
	h = le.AppendUint32(h, ix.Chunking.Max)
	h = le.AppendUint32(h, ix.Chunking.Align)
	h = le.AppendUint16(h, uint16(len(ix.Name)))
	h = append(h, ix.Name...)
	if ix.Arch != "" {
		// Appended after the name (section 3.3): readers from before it ignore it.
		h = append(h, byte(len(ix.Arch)))
		h = append(h, ix.Arch...)
	}
	writeSection(&body, sectionHeader, criticalFlag, h)

	t := make([]byte, 0, 8+len(ix.Entries)*entrySize)
	t = le.AppendUint64(t, uint64(len(ix.Entries)))
	for _, e := range ix.Entries {
		t = le.AppendUint64(t, uint64(e.Off))
		t = le.AppendUint32(t, e.Len)
		t = le.AppendUint32(t, e.Stored)
		if e.Zero {
			t = append(t, entryZero)
		} else {
			t = append(t, entryData)
		}
		t = append(t, e.ID[:]...)
	}
	writeSection(&body, sectionChunks, criticalFlag, t)
	if len(ix.Profile.Entries) > 0 {
		p := make([]byte, 0, 8+4*len(ix.Profile.Entries))
		p = le.AppendUint32(p, ix.Profile.Boots)
		p = le.AppendUint32(p, uint32(len(ix.Profile.Entries)))
		for _, i := range ix.Profile.Entries {
			p = le.AppendUint32(p, uint32(i))
		}
		// Not critical: a reader that does not know profiles boots without prefetching.
		writeSection(&body, sectionProfile, 0, p)
	}
	if body.Len() > MaxBody {
		return nil, fmt.Errorf("index for %q: %d entries exceed the format's limit", ix.Name, len(ix.Entries))
	}

	e := encoder()
	z := e.EncodeAll(body.Bytes(), nil)
	out := make([]byte, 0, preambleSize+len(z)+4+len(ix.Signature))
	out = append(out, Magic...)
	out = le.AppendUint16(out, FormatVersion)
	out = le.AppendUint16(out, 0)
	out = le.AppendUint32(out, 0)
	out = le.AppendUint64(out, uint64(len(z)))
	out = append(out, z...)
	out = le.AppendUint32(out, uint32(len(ix.Signature)))
	out = append(out, ix.Signature...)
	return out, nil
}

// SignedPart returns the bytes of an encoded index that a signature covers: everything
// before the signature block.
func SignedPart(file []byte) ([]byte, error) {
	if len(file) < preambleSize || string(file[:8]) != Magic {
		return nil, fmt.Errorf("%w: bad magic", ErrFormat)
	}
	n := binary.LittleEndian.Uint64(file[16:24])
	if n > uint64(len(file)-preambleSize) {
		return nil, fmt.Errorf("%w: truncated body", ErrFormat)
	}
	return file[:preambleSize+int(n)], nil
}

// WithSignature returns the encoded index with its signature block replaced by sig.
func WithSignature(file, sig []byte) ([]byte, error) {
	signed, err := SignedPart(file)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(signed)+4+len(sig))
	out = append(out, signed...)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(sig)))
	return append(out, sig...), nil
}

func writeSection(b *bytes.Buffer, typ, flags uint32, payload []byte) {
	var h [16]byte
	binary.LittleEndian.PutUint32(h[0:], typ)
	binary.LittleEndian.PutUint32(h[4:], flags)
	binary.LittleEndian.PutUint64(h[8:], uint64(len(payload)))
	b.Write(h[:])
	b.Write(payload)
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func timeOrZero(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}

// Decode parses an index file. It checks every structural rule (sizes, contiguity, limits)
// so that code using an Index can trust its shape; it does not check signatures.
//
// Its memory is bounded by what the file really holds, never by what it claims: the body
// is decompressed as a stream through a window of at most MaxWindow and read twice. The
// first pass checks every section and entry and allocates nothing in proportion to the
// input, so a decompression bomb or an absurd count is refused as soon as the stream shows
// it; only an index that passed is decoded again into exactly the entries it was seen to
// hold (docs/format.md, section 3.8, gives the bound measured).
func Decode(file []byte) (*Index, error) {
	bad := func(format string, a ...any) (*Index, error) {
		return nil, fmt.Errorf("%w: "+format, append([]any{ErrFormat}, a...)...)
	}
	le := binary.LittleEndian
	if len(file) < preambleSize {
		return bad("%d bytes is shorter than the preamble", len(file))
	}
	if string(file[:8]) != Magic {
		return bad("bad magic (is this an index file?)")
	}
	if v := le.Uint16(file[8:]); v != FormatVersion {
		return bad("format version %d; this nowhere reads version %d", v, FormatVersion)
	}
	bodyLen := le.Uint64(file[16:])
	if bodyLen > uint64(len(file)-preambleSize) {
		return bad("truncated: body of %d bytes declared, %d present", bodyLen, len(file)-preambleSize)
	}
	rest := file[preambleSize+int(bodyLen):]
	if len(rest) < 4 {
		return bad("truncated: no signature block")
	}
	sigLen := le.Uint32(rest)
	if sigLen > MaxSignature || int(sigLen) != len(rest)-4 {
		return bad("signature block of %d bytes declared, %d present", sigLen, len(rest)-4)
	}
	z := file[preambleSize : preambleSize+int(bodyLen)]
	if err := checkFrame(z); err != nil {
		return bad("body: %v", err)
	}
	d := getDecoder()
	defer putDecoder(d)
	// Pass 1: check, keeping only counts.
	var seen layout
	if err := walkBody(d, z, nil, &seen); err != nil {
		return bad("%v", err)
	}
	if !seen.header || !seen.chunks {
		return bad("missing header or chunk table")
	}
	if seen.covered != seen.size {
		return bad("entries cover %d bytes, image size is %d", seen.covered, seen.size)
	}
	if seen.profile > seen.entries {
		return bad("profile: %d entries for a chunk table of %d", seen.profile, seen.entries)
	}
	// Pass 2: the same stream again, into allocations the first pass proved present.
	ix := &Index{Signed: file[:preambleSize+int(bodyLen)]}
	ix.Entries = make([]Entry, seen.entries)
	if seen.profile > 0 {
		ix.Profile.Entries = make([]int, seen.profile)
	}
	if err := walkBody(d, z, ix, &layout{}); err != nil {
		// The same bytes decompress the same way: only a decoder bug gets here.
		return bad("%v (on a second reading)", err)
	}
	if sigLen > 0 {
		ix.Signature = append([]byte(nil), rest[4:]...)
	}
	if err := ix.check(); err != nil {
		return bad("%v", err)
	}
	return ix, nil
}

// MaxWindow bounds the zstd window of an index body, and so the decoder's buffer: what
// Encode writes uses at most 8 MiB (the encoder's window; a smaller body is one segment
// of its own size).
const MaxWindow = 8 << 20

// checkFrame checks, before anything is decompressed, that z is exactly one zstd frame
// (docs/format.md, section 3.1) whose window is at most MaxWindow: a frame that asks for
// a larger window, or a second frame behind the first, would make the decoder allocate
// what the input claims.
func checkFrame(z []byte) error {
	var h zstd.Header
	if err := h.Decode(z); err != nil {
		return fmt.Errorf("not a zstd frame: %v", err)
	}
	if h.Skippable {
		return errors.New("a skippable zstd frame, not an index body")
	}
	window := h.WindowSize
	if h.SingleSegment {
		window = h.FrameContentSize
	}
	if window > MaxWindow {
		return fmt.Errorf("zstd window of %d bytes, more than the %d an index may use", window, MaxWindow)
	}
	if h.HasFCS && h.FrameContentSize > MaxBody {
		return fmt.Errorf("zstd frame declares %d bytes, more than the %d an index body may hold", h.FrameContentSize, MaxBody)
	}
	// Walk the block headers (RFC 8878, 3.1.1.2) to the end of the frame.
	p := h.HeaderSize
	for {
		if len(z)-p < 3 {
			return errors.New("truncated zstd frame")
		}
		bh := uint32(z[p]) | uint32(z[p+1])<<8 | uint32(z[p+2])<<16
		p += 3
		last, typ, size := bh&1 != 0, (bh>>1)&3, int(bh>>3)
		switch typ {
		case 1: // RLE: one byte stored, size repeated
			size = 1
		case 3:
			return errors.New("reserved zstd block type")
		}
		if len(z)-p < size {
			return errors.New("truncated zstd block")
		}
		p += size
		if last {
			break
		}
	}
	if h.HasCheckSum {
		p += 4
	}
	switch {
	case p > len(z):
		return errors.New("truncated zstd checksum")
	case p < len(z):
		return fmt.Errorf("%d bytes after the zstd frame (a body is one frame)", len(z)-p)
	}
	return nil
}

var decoders sync.Pool

func getDecoder() *zstd.Decoder {
	if d, ok := decoders.Get().(*zstd.Decoder); ok {
		return d
	}
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(MaxWindow),
		zstd.WithDecoderMaxMemory(MaxBody))
	if err != nil {
		panic(err) // only invalid options fail
	}
	return d
}

func putDecoder(d *zstd.Decoder) {
	_ = d.Reset(nil) // drop the reference to the input
	decoders.Put(d)
}

// layout is what a pass over a body found: which sections, how many entries.
type layout struct {
	header, chunks bool
	profile        uint64 // profile items; 0: no profile section
	entries        uint64
	size, covered  int64 // the header's image size, the bytes the entries cover
}

// bodyReader reads a decompressed body, counting it against MaxBody.
type bodyReader struct {
	r    *bufio.Reader
	left int64 // bytes of MaxBody not yet read
}

// full reads exactly len(b) bytes; io.ErrUnexpectedEOF when the body ends first.
func (b *bodyReader) full(b2 []byte) error {
	n, err := io.ReadFull(b.r, b2)
	b.left -= int64(n)
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// walkBody reads the body z section by section. It checks every rule it can see in one
// stream and records what it found in seen; when ix is not nil, it also fills ix, whose
// Entries and Profile.Entries were allocated for exactly what a first pass counted.
func walkBody(d *zstd.Decoder, z []byte, ix *Index, seen *layout) error {
	if err := d.Reset(bytes.NewReader(z)); err != nil {
		return fmt.Errorf("body: %v", err)
	}
	br := &bodyReader{r: bufio.NewReaderSize(d, 64<<10), left: MaxBody}
	le := binary.LittleEndian
	var h [16]byte
	for {
		if _, err := br.r.Peek(1); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("body: %v", err)
		}
		if err := br.full(h[:]); err != nil {
			return fmt.Errorf("truncated section header: %w", err)
		}
		typ, flags, n := le.Uint32(h[:]), le.Uint32(h[4:]), le.Uint64(h[8:])
		if n > uint64(br.left) {
			return fmt.Errorf("%s declares %d bytes, more than the %d left of the %d an index body may hold",
				sectionName(typ), n, br.left, MaxBody)
		}
		var err error
		switch typ {
		case sectionHeader:
			if seen.header {
				return errors.New("two header sections")
			}
			seen.header = true
			seen.size, err = readHeader(br, int64(n), ix)
			if err != nil {
				err = fmt.Errorf("header: %w", err)
			}
		case sectionChunks:
			if seen.chunks {
				return errors.New("two chunk tables")
			}
			seen.chunks = true
			seen.entries, seen.covered, err = readChunks(br, n, ix)
			if err != nil {
				err = fmt.Errorf("chunk table: %w", err)
			}
		case sectionProfile:
			if seen.profile > 0 {
				return errors.New("two profile sections")
			}
			seen.profile, err = readProfile(br, n, ix)
			if err != nil {
				err = fmt.Errorf("profile: %w", err)
			}
		default:
			if flags&criticalFlag != 0 {
				return fmt.Errorf("section type %d is required but unknown to this nowhere (upgrade it)", typ)
			}
			err = skip(br, int64(n))
		}
		if err != nil {
			return err
		}
	}
}

// sectionName names a section type in messages.
func sectionName(typ uint32) string {
	switch typ {
	case sectionHeader:
		return "header"
	case sectionChunks:
		return "chunk table"
	case sectionProfile:
		return "profile"
	}
	return fmt.Sprintf("section of type %d", typ)
}

// skip reads and discards n bytes of the body.
func skip(br *bodyReader, n int64) error {
	got, err := br.r.Discard(int(n))
	br.left -= int64(got)
	if err != nil {
		return fmt.Errorf("section of %d bytes declared, the body ends after %d: %w", n, got, io.ErrUnexpectedEOF)
	}
	return nil
}

// maxHeader bounds what is kept of a header section: the fixed part, the longest name
// and the longest architecture. Later fields are skipped (a reader ignores them).
const maxHeader = 54 + 1<<16 + 256

// readHeader reads a header section of n bytes and returns the image size it gives.
// With ix, it stores the header's fields in ix.
func readHeader(br *bodyReader, n int64, ix *Index) (int64, error) {
	p := make([]byte, min(n, maxHeader))
	if err := br.full(p); err != nil {
		return 0, fmt.Errorf("%d bytes declared: %w", n, err)
	}
	if err := skip(br, n-int64(len(p))); err != nil {
		return 0, err
	}
	if ix == nil {
		ix = &Index{} // the first pass checks the header too, into a throwaway
	}
	err := ix.decodeHeader(p)
	return ix.Size, err
}

// readChunks reads a chunk table of n bytes, checking each entry as it arrives, and
// returns its entry count and the bytes the entries cover. With ix, it stores the
// entries in ix.Entries.
func readChunks(br *bodyReader, n uint64, ix *Index) (count uint64, covered int64, err error) {
	le := binary.LittleEndian
	if n < 8 {
		return 0, 0, errors.New("no entry count")
	}
	var c [8]byte
	if err := br.full(c[:]); err != nil {
		return 0, 0, err
	}
	count = le.Uint64(c[:])
	// The count must match the section's length, which the caller checked against what
	// is left of MaxBody: an absurd count stops here, before anything is allocated.
	if (n-8)%entrySize != 0 || count != (n-8)/entrySize {
		return 0, 0, fmt.Errorf("declares %d entries, but its %d bytes hold %d", count, n-8, (n-8)/entrySize)
	}
	if ix != nil && uint64(len(ix.Entries)) != count {
		return 0, 0, fmt.Errorf("%d entries, %d on the first reading", count, len(ix.Entries))
	}
	var off int64
	var buf [entrySize * 1024]byte
	for i := uint64(0); i < count; {
		k := min(count-i, uint64(len(buf)/entrySize))
		if err := br.full(buf[:k*entrySize]); err != nil {
			return 0, 0, fmt.Errorf("%d entries declared, the body ends in entry %d: %w", count, i, err)
		}
		for j := range k {
			r := buf[j*entrySize : (j+1)*entrySize]
			e := Entry{Off: int64(le.Uint64(r)), Len: le.Uint32(r[8:]), Stored: le.Uint32(r[12:])}
			switch r[16] {
			case entryData:
			case entryZero:
				e.Zero = true
			default:
				return 0, 0, fmt.Errorf("entry %d: unknown kind %d", i+j, r[16])
			}
			copy(e.ID[:], r[17:])
			// The rules of check, entry by entry: a bomb of junk entries is refused at the
			// first one rather than after the whole table.
			if err := e.check(i+j, off); err != nil {
				return 0, 0, err
			}
			off += int64(e.Len)
			if ix != nil {
				ix.Entries[i+j] = e
			}
		}
		i += k
	}
	return count, off, nil
}

// readProfile reads a profile section of n bytes and returns its item count. With ix,
// it stores the items in ix.Profile.
func readProfile(br *bodyReader, n uint64, ix *Index) (uint64, error) {
	le := binary.LittleEndian
	if n < 8 {
		return 0, fmt.Errorf("%d bytes, want at least 8", n)
	}
	var h [8]byte
	if err := br.full(h[:]); err != nil {
		return 0, err
	}
	boots, count := le.Uint32(h[:]), uint64(le.Uint32(h[4:]))
	// Checked before allocating, like the chunk table.
	if count*4 != n-8 {
		return 0, fmt.Errorf("%d entries declared, %d bytes of entries present", count, n-8)
	}
	if count == 0 {
		return 0, fmt.Errorf("no entries (an index without a profile has no profile section)")
	}
	if ix != nil {
		if uint64(len(ix.Profile.Entries)) != count {
			return 0, fmt.Errorf("%d entries, %d on the first reading", count, len(ix.Profile.Entries))
		}
		ix.Profile.Boots = boots
	}
	var buf [4 * 1024]byte
	for i := uint64(0); i < count; {
		k := min(count-i, uint64(len(buf)/4))
		if err := br.full(buf[:k*4]); err != nil {
			return 0, err
		}
		if ix != nil {
			for j := range k {
				ix.Profile.Entries[i+j] = int(le.Uint32(buf[4*j:]))
			}
		}
		i += k
	}
	return count, nil
}

func (ix *Index) decodeHeader(p []byte) error {
	le := binary.LittleEndian
	const fixed = 8*4 + 4 + 4*4 + 2
	if len(p) < fixed {
		return fmt.Errorf("%d bytes, want at least %d", len(p), fixed)
	}
	ix.Version = le.Uint64(p)
	ix.Created = timeOrZero(int64(le.Uint64(p[8:])))
	ix.Expires = timeOrZero(int64(le.Uint64(p[16:])))
	size := le.Uint64(p[24:])
	if size > 1<<60 {
		return fmt.Errorf("image size %d is absurd", size)
	}
	ix.Size = int64(size)
	ix.Chunking = chunk.Params{
		Kind: chunk.Kind(p[32]),
		Min:  le.Uint32(p[36:]), Avg: le.Uint32(p[40:]), Max: le.Uint32(p[44:]), Align: le.Uint32(p[48:]),
	}
	n := int(le.Uint16(p[52:]))
	if len(p) < fixed+n {
		return fmt.Errorf("name of %d bytes declared, %d present", n, len(p)-fixed)
	}
	ix.Name = string(p[fixed : fixed+n])
	if err := ValidName(ix.Name); err != nil {
		return err
	}
	if rest := p[fixed+n:]; len(rest) > 0 {
		a := int(rest[0])
		if len(rest) < 1+a {
			return fmt.Errorf("architecture of %d bytes declared, %d present", a, len(rest)-1)
		}
		ix.Arch = string(rest[1 : 1+a])
		if err := ValidArch(ix.Arch); err != nil {
			return err
		}
	}
	return nil
}

// check enforces the rules every index obeys: entries cover [0, Size) in order without
// gaps, data chunks are within chunk.MaxSize, zero runs carry no ID.
func (ix *Index) check() error {
	var off int64
	for i, e := range ix.Entries {
		if err := e.check(uint64(i), off); err != nil {
			return err
		}
		off += int64(e.Len)
	}
	if off != ix.Size {
		return fmt.Errorf("entries cover %d bytes, image size is %d", off, ix.Size)
	}
	return ix.Profile.check(ix.Entries)
}

// check enforces the rules of one entry, entry i of its table, which must start at off.
func (e Entry) check(i uint64, off int64) error {
	switch {
	case e.Off != off:
		return fmt.Errorf("entry %d starts at %d, expected %d", i, e.Off, off)
	case e.Len == 0:
		return fmt.Errorf("entry %d is empty", i)
	case e.Zero && (e.Stored != 0 || !e.ID.IsZero()):
		return fmt.Errorf("entry %d: zero run with a chunk ID", i)
	case !e.Zero && e.Len > chunk.MaxSize:
		return fmt.Errorf("entry %d: chunk of %d bytes exceeds %d", i, e.Len, chunk.MaxSize)
	case !e.Zero && (e.Stored == 0 || e.ID.IsZero()):
		return fmt.Errorf("entry %d: data chunk without ID or stored size", i)
	case !e.Zero && int64(e.Stored) > int64(chunk.MaxStored(int(e.Len))):
		return fmt.Errorf("entry %d: stored size %d, more than the %d bytes a %d-byte chunk can take compressed", i, e.Stored, chunk.MaxStored(int(e.Len)), e.Len)
	}
	return nil
}

// check enforces the profile's rules: every item names a data entry of the chunk table,
// once.
func (p Profile) check(entries []Entry) error {
	if len(p.Entries) > len(entries) {
		return fmt.Errorf("profile: %d entries for a chunk table of %d", len(p.Entries), len(entries))
	}
	// A bitset, not a map: one bit per entry of the table however long the profile.
	seen := make([]uint64, (len(entries)+63)/64)
	for k, i := range p.Entries {
		switch {
		case i < 0 || i >= len(entries):
			return fmt.Errorf("profile item %d: entry %d is not in the chunk table (%d entries)", k, i, len(entries))
		case entries[i].Zero:
			return fmt.Errorf("profile item %d: entry %d is a zero run", k, i)
		}
		if seen[i/64]&(1<<(i%64)) != 0 {
			return fmt.Errorf("profile item %d: entry %d listed twice", k, i)
		}
		seen[i/64] |= 1 << (i % 64)
	}
	return nil
}
