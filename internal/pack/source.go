package pack

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/nowhere-boot/nowhere/internal/fstype"
)

// source returns the image's first bytes (for format detection) and the stream to cut.
// A regular file read from its start becomes a sparseFile, so the splitter skips its holes
// instead of reading gigabytes of zeros; anything else is read through a buffer.
func source(r io.Reader) (head []byte, stream io.Reader, err error) {
	if f, ok := r.(*os.File); ok {
		if sf := newSparseFile(f); sf != nil {
			head = make([]byte, fstype.HeaderSize)
			n, err := f.ReadAt(head, 0)
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, nil, fmt.Errorf("reading image: %w", err)
			}
			return head[:n], sf, nil
		}
	}
	br := bufio.NewReaderSize(r, 64<<10)
	head, err = br.Peek(fstype.HeaderSize)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, fmt.Errorf("reading image: %w", err)
	}
	return head, br, nil
}

// sparseFile is a regular file that can say where its holes are (chunk.HoleFinder).
type sparseFile struct {
	*os.File
	size int64
}

func newSparseFile(f *os.File) *sparseFile {
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return nil
	}
	if pos, err := f.Seek(0, io.SeekCurrent); err != nil || pos != 0 {
		return nil
	}
	return &sparseFile{File: f, size: st.Size()}
}

// NextData is lseek(SEEK_DATA); ENXIO means only a hole follows off.
func (f *sparseFile) NextData(off int64) (int64, error) {
	d, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
	if errors.Is(err, unix.ENXIO) {
		return f.size, nil
	}
	return d, err
}
