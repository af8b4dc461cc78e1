package index

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
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
	// MaxBody bounds the decompressed body: 5 million entries, far beyond any real image,
	// and the most memory a hostile index can make a client spend on it.
	MaxBody = 256 << 20
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
	codecOnce sync.Once
	enc       *zstd.Encoder
	dec       *zstd.Decoder
)

func codecs() (*zstd.Encoder, *zstd.Decoder) {
	codecOnce.Do(func() {
		enc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBetterCompression))
		dec, _ = zstd.NewReader(nil, zstd.WithDecoderMaxMemory(MaxBody), zstd.WithDecoderConcurrency(1))
	})
	return enc, dec
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

	e, _ := codecs()
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
	_, d := codecs()
	body, err := d.DecodeAll(file[preambleSize:preambleSize+int(bodyLen)], nil)
	if err != nil {
		return bad("body: %v", err)
	}
	ix := &Index{Signed: file[:preambleSize+int(bodyLen)]}
	if sigLen > 0 {
		ix.Signature = append([]byte(nil), rest[4:]...)
	}
	var haveHeader, haveChunks, haveProfile bool
	for len(body) > 0 {
		if len(body) < 16 {
			return bad("truncated section header")
		}
		typ, flags, n := le.Uint32(body), le.Uint32(body[4:]), le.Uint64(body[8:])
		body = body[16:]
		if n > uint64(len(body)) {
			return bad("section %d: %d bytes declared, %d left", typ, n, len(body))
		}
		payload := body[:n]
		body = body[n:]
		switch typ {
		case sectionHeader:
			if haveHeader {
				return bad("two header sections")
			}
			haveHeader = true
			if err := ix.decodeHeader(payload); err != nil {
				return bad("header: %v", err)
			}
		case sectionChunks:
			if haveChunks {
				return bad("two chunk tables")
			}
			haveChunks = true
			if err := ix.decodeChunks(payload); err != nil {
				return bad("chunk table: %v", err)
			}
		case sectionProfile:
			if haveProfile {
				return bad("two profile sections")
			}
			haveProfile = true
			if err := ix.decodeProfile(payload); err != nil {
				return bad("profile: %v", err)
			}
		default:
			if flags&criticalFlag != 0 {
				return bad("section type %d is required but unknown to this nowhere (upgrade it)", typ)
			}
		}
	}
	if !haveHeader || !haveChunks {
		return bad("missing header or chunk table")
	}
	if err := ix.check(); err != nil {
		return bad("%v", err)
	}
	return ix, nil
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

func (ix *Index) decodeChunks(p []byte) error {
	le := binary.LittleEndian
	if len(p) < 8 {
		return fmt.Errorf("no entry count")
	}
	count := le.Uint64(p)
	p = p[8:]
	// Checked before allocating: the count must match the bytes actually present.
	if count != uint64(len(p)/entrySize) || len(p)%entrySize != 0 {
		return fmt.Errorf("%d entries declared, %d bytes of entries present", count, len(p))
	}
	ix.Entries = make([]Entry, count)
	for i := range ix.Entries {
		r := p[i*entrySize : (i+1)*entrySize]
		e := &ix.Entries[i]
		e.Off = int64(le.Uint64(r))
		e.Len = le.Uint32(r[8:])
		e.Stored = le.Uint32(r[12:])
		switch r[16] {
		case entryData:
		case entryZero:
			e.Zero = true
		default:
			return fmt.Errorf("entry %d: unknown kind %d", i, r[16])
		}
		copy(e.ID[:], r[17:])
	}
	return nil
}

func (ix *Index) decodeProfile(p []byte) error {
	le := binary.LittleEndian
	if len(p) < 8 {
		return fmt.Errorf("%d bytes, want at least 8", len(p))
	}
	boots, count := le.Uint32(p), le.Uint32(p[4:])
	p = p[8:]
	// Checked before allocating, like the chunk table.
	if uint64(count)*4 != uint64(len(p)) {
		return fmt.Errorf("%d entries declared, %d bytes of entries present", count, len(p))
	}
	if count == 0 {
		return fmt.Errorf("no entries (an index without a profile has no profile section)")
	}
	ix.Profile = Profile{Boots: boots, Entries: make([]int, count)}
	for i := range ix.Profile.Entries {
		ix.Profile.Entries[i] = int(le.Uint32(p[4*i:]))
	}
	return nil
}

// check enforces the rules every index obeys: entries cover [0, Size) in order without
// gaps, data chunks are within chunk.MaxSize, zero runs carry no ID.
func (ix *Index) check() error {
	var off int64
	for i, e := range ix.Entries {
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
		off += int64(e.Len)
	}
	if off != ix.Size {
		return fmt.Errorf("entries cover %d bytes, image size is %d", off, ix.Size)
	}
	return ix.Profile.check(ix.Entries)
}

// check enforces the profile's rules: every item names a data entry of the chunk table,
// once.
func (p Profile) check(entries []Entry) error {
	if len(p.Entries) > len(entries) {
		return fmt.Errorf("profile: %d entries for a chunk table of %d", len(p.Entries), len(entries))
	}
	seen := make(map[int]struct{}, len(p.Entries))
	for k, i := range p.Entries {
		switch {
		case i < 0 || i >= len(entries):
			return fmt.Errorf("profile item %d: entry %d is not in the chunk table (%d entries)", k, i, len(entries))
		case entries[i].Zero:
			return fmt.Errorf("profile item %d: entry %d is a zero run", k, i)
		}
		if _, dup := seen[i]; dup {
			return fmt.Errorf("profile item %d: entry %d listed twice", k, i)
		}
		seen[i] = struct{}{}
	}
	return nil
}
