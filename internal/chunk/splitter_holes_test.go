package chunk

import (
	"crypto/sha256"
	"errors"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// holeFile is a sparse file that finds its holes with SEEK_DATA and counts what is read.
type holeFile struct {
	*os.File
	size, read int64
}

func (f *holeFile) Read(p []byte) (int, error) {
	n, err := f.File.Read(p)
	f.read += int64(n)
	return n, err
}

func (f *holeFile) NextData(off int64) (int64, error) {
	d, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
	if errors.Is(err, unix.ENXIO) {
		return f.size, nil
	}
	return d, err
}

// plainReader hides everything but Read: the splitter must read every byte.
type plainReader struct{ r io.Reader }

func (p plainReader) Read(b []byte) (int, error) { return p.r.Read(b) }

type pieceSum struct {
	Off  int64
	Len  int
	Zero bool
	Sum  [32]byte
}

func splitSums(t *testing.T, r io.Reader, c Chunker) []pieceSum {
	t.Helper()
	var out []pieceSum
	sp := NewSplitter(r, c)
	for {
		p, err := sp.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		ps := pieceSum{Off: p.Off, Len: p.Len, Zero: p.Zero}
		if !p.Zero {
			ps.Sum = sha256.Sum256(p.Data)
		}
		out = append(out, ps)
	}
}

// writeSparse makes a file with holes, written zeros and data at unaligned offsets.
func writeSparse(t *testing.T, size int64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sparse.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rnd := rand.New(rand.NewSource(1))
	data := func(off int64, n int) {
		b := make([]byte, n)
		rnd.Read(b)
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	data(0, 10000)                                                   // data, then a hole from an unaligned offset
	data(5<<20+123, 300<<10)                                         // unaligned data inside a hole
	if _, err := f.WriteAt(make([]byte, 1<<20), 9<<20); err != nil { // zeros that are not a hole
		t.Fatal(err)
	}
	data(10<<20+4096, 5000)
	data(12<<20, 70<<10) // a data run longer than a zero run
	data(12<<20+100<<10, 1)
	data(40<<20+5, 1000) // after a hole longer than the splitter's buffer, which starts
	// at an unaligned offset with byte-level chunking
	if err := f.Truncate(size); err != nil { // a hole up to an unaligned end
		t.Fatal(err)
	}
	return path
}

func TestSplitterSkipsHolesWithSamePieces(t *testing.T) {
	size := int64(64<<20 + 1000)
	path := writeSparse(t, size)
	for _, c := range []Chunker{NewCDC(16<<10, 64<<10, 256<<10, 4096), NewCDC(16<<10, 64<<10, 256<<10, 1), Fixed{Size: 64 << 10}} {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		want := splitSums(t, plainReader{f}, c)
		f.Close()

		f, err = os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		hf := &holeFile{File: f, size: size}
		got := splitSums(t, hf, c)
		f.Close()

		if len(got) != len(want) {
			t.Fatalf("%v: %d pieces skipping holes, %d reading every byte", c.Params(), len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%v: piece %d: skipping holes gives off %d len %d zero %v, reading every byte off %d len %d zero %v",
					c.Params(), i, got[i].Off, got[i].Len, got[i].Zero, want[i].Off, want[i].Len, want[i].Zero)
			}
		}
		if last := want[len(want)-1]; last.Off+int64(last.Len) != size {
			t.Fatalf("%v: pieces end at %d, file is %d bytes", c.Params(), last.Off+int64(last.Len), size)
		}
		// The hole from ~13 MiB to the end is skipped, not read.
		if hf.read > 32<<20 {
			t.Errorf("%v: read %d bytes of a %d-byte file that is mostly holes", c.Params(), hf.read, size)
		}
	}
}

func TestSplitterHoleLongerThanMaxZeroRun(t *testing.T) {
	if testing.Short() {
		t.Skip("reads a 1.5 GiB sparse file without hole skipping (-short)")
	}
	size := int64(3*MaxZeroRun/2 + 777)
	path := writeSparse(t, size)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	hf := &holeFile{File: f, size: size}
	got := splitSums(t, hf, NewCDC(16<<10, 64<<10, 256<<10, 4096))
	var next int64
	for i, p := range got {
		if p.Off != next {
			t.Fatalf("piece %d at %d, want %d", i, p.Off, next)
		}
		if p.Len <= 0 || p.Len > MaxZeroRun {
			t.Fatalf("piece %d: length %d", i, p.Len)
		}
		next += int64(p.Len)
	}
	if next != size {
		t.Fatalf("pieces cover %d bytes, file is %d", next, size)
	}
	f2, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	want := splitSums(t, plainReader{f2}, NewCDC(16<<10, 64<<10, 256<<10, 4096))
	if len(want) != len(got) {
		t.Fatalf("%d pieces skipping holes, %d reading every byte", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("piece %d differs: %+v vs %+v", i, got[i], want[i])
		}
	}
}
