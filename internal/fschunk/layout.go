// Package fschunk cuts filesystem images at the boundaries of their files' data.
//
// mkfs lays files out in traversal order, so adding one file moves every file after it: in
// whole blocks (ext4, erofs) or by any number of bytes (squashfs). Content-defined chunking
// finds most moved data again but pays for every place where a chunk straddles a moved and
// an unmoved file. The image's own metadata says exactly where each file's data lies; a
// chunk that never straddles two files keeps its ID wherever mkfs puts that file.
//
// The readers here parse just enough of each format to list those data ranges. They read
// metadata with ReadAt before the image is streamed, never mount anything, and treat the
// image as hostile: every loop and allocation is bounded, and any inconsistency is an error
// (pack then falls back to plain content-defined chunking).
package fschunk

import (
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/nowhere-boot/nowhere/internal/fstype"
)

// Layout is what a reader learnt about an image: the sorted, distinct offsets at which a
// chunk should end (starts and ends of file data and of metadata tables).
type Layout struct {
	Type fstype.Type
	Size int64   // image size the layout was read from
	Cuts []int64 // sorted, distinct, each in (0, Size)
	// Small is the size below which neighbouring pieces are grouped into one chunk (0: the
	// default for uncompressed block filesystems).
	Small int64
}

// ErrCorrupt is wrapped by every error about the image's contents (as opposed to errors
// reading it).
var ErrCorrupt = errors.New("inconsistent filesystem metadata")

// Limits bound what a reader may spend on one image, so that a hostile image cannot make
// pack read or allocate without end.
const (
	// maxCuts bounds the cut points of one image (16 bytes each in memory).
	maxCuts = 16 << 20
	// maxMetaRead bounds the metadata bytes one reader reads (inode tables, extent blocks,
	// directories, squashfs tables): a few percent of any real image.
	maxMetaRead = 2 << 30
	// maxOneRead bounds a single read (an ext4 group's inode table is a few MiB).
	maxOneRead = 256 << 20
	// maxInodes bounds the inodes a directory walk visits (and remembers).
	maxInodes = 8 << 20
)

// Read detects nothing: it reads the layout of an image already known to be of type t.
func Read(t fstype.Type, r io.ReaderAt, size int64) (*Layout, error) {
	var (
		l   *Layout
		err error
	)
	switch t {
	case fstype.Ext4:
		l, err = readExt4(r, size)
	case fstype.Erofs:
		l, err = readErofs(r, size)
	case fstype.Squashfs:
		l, err = readSquashfs(r, size)
	default:
		return nil, fmt.Errorf("no filesystem-aware chunking for %q", t)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t, err)
	}
	l.Type, l.Size = t, size
	return l, nil
}

// cutSet collects cut points with a bound on their number.
type cutSet struct {
	size int64
	cuts []int64
}

// add records a range [start, end) of the image: a chunk should end at both edges. Ranges
// reaching outside the image are corrupt metadata.
func (c *cutSet) add(start, end int64) error {
	if start < 0 || end < start || end > c.size {
		return fmt.Errorf("%w: range %d-%d outside the %d-byte image", ErrCorrupt, start, end, c.size)
	}
	if len(c.cuts)+2 > maxCuts {
		return fmt.Errorf("%w: more than %d data ranges", ErrCorrupt, maxCuts/2)
	}
	c.cuts = append(c.cuts, start, end)
	return nil
}

// layout sorts and deduplicates the cuts and drops those at the image's edges.
func (c *cutSet) layout() *Layout {
	slices.Sort(c.cuts)
	c.cuts = slices.Compact(c.cuts)
	out := c.cuts[:0]
	for _, x := range c.cuts {
		if x > 0 && x < c.size {
			out = append(out, x)
		}
	}
	return &Layout{Cuts: slices.Clip(out)}
}

// meta reads metadata from the image within a byte budget.
type meta struct {
	r      io.ReaderAt
	size   int64
	budget int64
}

func newMeta(r io.ReaderAt, size int64) *meta {
	// Real metadata is read about once and is smaller than the image; the slack covers
	// erofs reading inode blocks piecewise.
	return &meta{r: r, size: size, budget: min(maxMetaRead, 4*size+16<<20)}
}

// read returns n bytes at off, an error if they are not all inside the image.
func (m *meta) read(off int64, n int) ([]byte, error) {
	if n < 0 || n > maxOneRead || off < 0 || off > m.size || int64(n) > m.size-off {
		return nil, fmt.Errorf("%w: %d bytes at offset %d are outside the %d-byte image", ErrCorrupt, n, off, m.size)
	}
	if m.budget -= int64(n); m.budget < 0 {
		return nil, fmt.Errorf("%w: metadata larger than %d bytes", ErrCorrupt, int64(maxMetaRead))
	}
	b := make([]byte, n)
	if k, err := m.r.ReadAt(b, off); k < n {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("reading %d bytes at offset %d: %w", n, off, err)
	}
	return b, nil
}
