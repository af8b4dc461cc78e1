package pack

import (
	"fmt"
	"io"
	"os"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/fschunk"
	"github.com/nowhere-boot/nowhere/internal/fstype"
)

// sizedReaderAt is a random-access image of known size (an *io.SectionReader, a
// *bytes.Reader); *os.File is handled apart because its size needs a Stat or a Seek.
type sizedReaderAt interface {
	io.ReaderAt
	Size() int64
}

// chunker returns the chunker for an image of type t read from r. With opt.FSAware and
// an image that can be read at random (a file or block device, not a pipe), it reads the
// filesystem's metadata first and cuts at file-data boundaries, content-defined between
// them (fschunk). Anything else, and an image whose metadata cannot be read, gets the
// content-defined chunker of opt.Spec; a metadata problem is reported through opt.Warn.
func (opt Options) chunker(r io.Reader, t fstype.Type) (chunk.Chunker, error) {
	ck, err := opt.Spec.New(fstype.ChunkAlign(t))
	if err != nil || !opt.FSAware || t == fstype.Unknown {
		return ck, err
	}
	cdc, ok := ck.(*chunk.CDC)
	if !ok {
		return ck, nil // fixed-size chunking was asked for
	}
	ra, size, err := randomAccess(r)
	if err != nil || ra == nil {
		return ck, err
	}
	l, err := fschunk.Read(t, ra, size)
	if err != nil {
		if opt.Warn != nil {
			opt.Warn(fmt.Sprintf("cannot read the %s metadata (%v); chunking by content only", t, err))
		}
		return ck, nil
	}
	return fschunk.NewChunker(l, cdc), nil
}

// randomAccess returns r as a ReaderAt with its size, or nil if r is a stream. It does
// not move r's read position.
func randomAccess(r io.Reader) (io.ReaderAt, int64, error) {
	switch v := r.(type) {
	case *os.File:
		st, err := v.Stat()
		if err != nil {
			return nil, 0, err
		}
		if st.Mode().IsRegular() {
			return v, st.Size(), nil
		}
		if st.Mode()&os.ModeDevice == 0 || st.Mode()&os.ModeCharDevice != 0 {
			return nil, 0, nil // pipe, socket, terminal
		}
		pos, err := v.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, 0, nil
		}
		size, err := v.Seek(0, io.SeekEnd)
		if _, err2 := v.Seek(pos, io.SeekStart); err2 != nil {
			return nil, 0, fmt.Errorf("block device %s: %w", v.Name(), err2)
		}
		if err != nil {
			return nil, 0, nil
		}
		return v, size, nil
	case sizedReaderAt:
		return v, v.Size(), nil
	}
	return nil, 0, nil
}
