package chunk

import (
	"bytes"
	"errors"
	"io"
)

const (
	// ZeroBlock is the granularity at which all-zero runs are found.
	ZeroBlock = 4096
	// ZeroMin is the shortest zero run recorded as a zero entry (never stored or fetched);
	// shorter runs stay inside data chunks so sparse files do not shred the chunking.
	ZeroMin = 64 << 10
	// MaxZeroRun caps one zero entry (its length is a uint32 in the index).
	MaxZeroRun = 1 << 30
)

var zeros [ZeroBlock]byte

// Piece is one entry of an image: either a run of zeros or a chunk of data.
type Piece struct {
	Off  int64
	Len  int
	Zero bool
	Data []byte // the chunk's bytes (nil for zero runs); valid until the next call to Next
}

// HoleFinder is implemented by streams that know where their holes are (sparse files):
// the Splitter skips a hole that a zero run reaches instead of reading its zeros. The
// pieces are the same as when reading every byte; only the work differs.
type HoleFinder interface {
	// NextData returns the offset of the first byte at or after off that is not in a
	// hole (lseek SEEK_DATA), or the stream's size when only a hole follows. It may move
	// the read position: the Splitter seeks after asking.
	NextData(off int64) (int64, error)
	// Seek moves the read position, as io.Seeker.
	Seek(offset int64, whence int) (int64, error)
}

// Splitter cuts a stream into Pieces: long zero runs first (they become zero entries and
// bound the data regions around them), then the data regions with a Chunker. Memory is a
// fixed window of a few MaxLen, whatever the size of the stream.
type Splitter struct {
	r          io.Reader
	c          Chunker
	buf        []byte
	start, end int   // unconsumed bytes are buf[start:end]
	off        int64 // image offset of buf[start]
	eof        bool
	need       int        // bytes to look ahead: one maximal chunk plus one minimal zero run
	holes      HoleFinder // nil unless r is one (and it works)
}

// NewSplitter returns a Splitter reading r from image offset 0 (r's read position). When r
// is a HoleFinder, holes inside zero runs are skipped rather than read.
func NewSplitter(r io.Reader, c Chunker) *Splitter {
	need := c.MaxLen() + ZeroMin
	size := 2 * need
	if size < 4<<20 {
		size = 4 << 20
	}
	s := &Splitter{r: r, c: c, buf: make([]byte, size), need: need}
	s.holes, _ = r.(HoleFinder)
	return s
}

// Offset returns how many bytes of the stream have been returned as pieces.
func (s *Splitter) Offset() int64 { return s.off }

// fill makes at least s.need bytes available unless the stream ends first.
func (s *Splitter) fill() error {
	if s.eof || s.end-s.start >= s.need {
		return nil
	}
	if s.start > 0 {
		s.end = copy(s.buf, s.buf[s.start:s.end])
		s.start = 0
	}
	for s.end < len(s.buf) && !s.eof {
		n, err := s.r.Read(s.buf[s.end:])
		s.end += n
		switch {
		case errors.Is(err, io.EOF):
			s.eof = true
		case err != nil:
			return err
		case n == 0:
			continue
		}
		if s.end-s.start >= s.need && s.end > len(s.buf)/2 {
			break
		}
	}
	return nil
}

// zeroRun returns how many bytes from buf[p:] are zero, in whole ZeroBlocks (a shorter
// final block counts when the stream ends there), looking at most at max bytes.
func (s *Splitter) zeroRun(p, max int) int {
	n := 0
	for n < max {
		b := s.end - (p + n)
		if b > ZeroBlock {
			b = ZeroBlock
		}
		if b <= 0 || (b < ZeroBlock && !s.eof) {
			break
		}
		if !bytes.Equal(s.buf[p+n:p+n+b], zeros[:b]) {
			break
		}
		n += b
	}
	return n
}

// Next returns the next piece, or io.EOF after the last one.
func (s *Splitter) Next() (Piece, error) {
	if err := s.fill(); err != nil {
		return Piece{}, err
	}
	avail := s.end - s.start
	if avail == 0 {
		return Piece{}, io.EOF
	}
	if run := s.zeroRun(s.start, ZeroMin); run >= ZeroMin || (run == avail && s.eof) {
		return s.nextZero()
	}
	limit := avail
	final := s.eof
	if limit > s.c.MaxLen() {
		limit, final = s.c.MaxLen(), false
	}
	// A long zero run inside the window ends this data region there.
	for q := ZeroBlock; q < limit; q += ZeroBlock {
		if run := s.zeroRun(s.start+q, ZeroMin); run >= ZeroMin || (s.eof && s.start+q+run == s.end) {
			limit, final = q, true
			break
		}
	}
	n := s.c.Cut(s.off, s.buf[s.start:s.start+limit], final)
	if n <= 0 || n > limit {
		n = limit // a chunker bug must not lose or repeat bytes
	}
	p := Piece{Off: s.off, Len: n, Data: s.buf[s.start : s.start+n]}
	s.start += n
	s.off += int64(n)
	return p, nil
}

func (s *Splitter) nextZero() (Piece, error) {
	p := Piece{Off: s.off, Zero: true}
	for p.Len < MaxZeroRun {
		if err := s.skipHole(&p); err != nil {
			return Piece{}, err
		}
		if err := s.fill(); err != nil {
			return Piece{}, err
		}
		max := MaxZeroRun - p.Len
		run := s.zeroRun(s.start, max)
		if run == 0 {
			break
		}
		p.Len += run
		s.start += run
		s.off += int64(run)
	}
	return p, nil
}

// skipHole extends zero run p over a hole of the stream without reading it. It acts only
// when the buffer holds nothing but the zeros of a partial block (the zero run has consumed
// the rest), so the stream's read position is where the run continues. It counts whole
// ZeroBlocks, like zeroRun, and leaves the rest of the hole to be read: the pieces come
// out exactly as if every byte had been read.
func (s *Splitter) skipHole(p *Piece) error {
	rest := s.end - s.start
	if s.holes == nil || s.eof || rest >= ZeroBlock || !bytes.Equal(s.buf[s.start:s.end], zeros[:rest]) {
		return nil
	}
	pos := s.off + int64(rest) // the stream's read position
	data, err := s.holes.NextData(pos)
	if err != nil || data < pos {
		h := s.holes
		s.holes = nil // cannot find holes after all (a filesystem without SEEK_DATA): read every byte
		_, err := h.Seek(pos, io.SeekStart)
		return err
	}
	skip := (int64(rest) + data - pos) / ZeroBlock * ZeroBlock
	if max := int64(MaxZeroRun - p.Len); skip > max {
		skip = max
	}
	if skip <= int64(rest) { // no whole block to skip: carry on reading from pos
		_, err := s.holes.Seek(pos, io.SeekStart)
		return err
	}
	if _, err := s.holes.Seek(s.off+skip, io.SeekStart); err != nil {
		return err
	}
	s.start, s.end = 0, 0
	s.off += skip
	p.Len += int(skip)
	return nil
}
