package fschunk

import (
	"testing"

	"github.com/nowhere-boot/nowhere/internal/fstype"
)

// fuzzSize is the size of the image a fuzz input is read as: the input, then zeros. The
// committed seeds (testdata/fuzz) are small images with their trailing zeros trimmed.
const fuzzSize = 256 << 10

// zeroPadded reads as data followed by zeros up to size.
type zeroPadded struct {
	data []byte
	size int64
}

func (z zeroPadded) ReadAt(p []byte, off int64) (int, error) {
	for i := range p {
		j := off + int64(i)
		if j < int64(len(z.data)) {
			p[i] = z.data[j]
		} else {
			p[i] = 0
		}
	}
	return len(p), nil
}

// fuzzLayout checks that reading any image either fails cleanly or returns sorted cut
// points inside the image; a panic or a hang fails the fuzzer.
func fuzzLayout(t *testing.T, typ fstype.Type, data []byte) {
	size := max(int64(len(data)), fuzzSize)
	l, err := Read(typ, zeroPadded{data, size}, size)
	if err != nil {
		return
	}
	for i, c := range l.Cuts {
		if c <= 0 || c >= size || (i > 0 && c <= l.Cuts[i-1]) {
			t.Fatalf("cut %d at %d: unsorted or outside the %d-byte image", i, c, size)
		}
	}
}

func FuzzExt4(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzLayout(t, fstype.Ext4, data) })
}

func FuzzErofs(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzLayout(t, fstype.Erofs, data) })
}

func FuzzSquashfs(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzLayout(t, fstype.Squashfs, data) })
}

// The seeds are real images: they must parse, with file data found in them.
func TestFuzzSeedsParse(t *testing.T) {
	for _, c := range []struct {
		typ  fstype.Type
		seed string
	}{
		{fstype.Ext4, "FuzzExt4/tiny-1k-blocks"},
		{fstype.Squashfs, "FuzzSquashfs/tiny-gzip"},
		{fstype.Erofs, "FuzzErofs/tiny-plain"},
		{fstype.Erofs, "FuzzErofs/tiny-lz4"},
	} {
		data := readSeed(t, "testdata/fuzz/"+c.seed)
		size := max(int64(len(data)), fuzzSize)
		l, err := Read(c.typ, zeroPadded{data, size}, size)
		if err != nil {
			t.Fatalf("%s: %v", c.seed, err)
		}
		if len(l.Cuts) == 0 {
			t.Fatalf("%s: no cut points", c.seed)
		}
	}
}
