package chunk

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
	"testing/iotest"
)

// readers delivers the same bytes in different Read sizes.
var readers = map[string]func([]byte) io.Reader{
	"bytes":   func(b []byte) io.Reader { return bytes.NewReader(b) },
	"onebyte": func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) },
	"half":    func(b []byte) io.Reader { return iotest.HalfReader(bytes.NewReader(b)) },
	"dataerr": func(b []byte) io.Reader { return iotest.DataErrReader(bytes.NewReader(b)) },
	"stutter": func(b []byte) io.Reader { return &stutterReader{r: bytes.NewReader(b)} },
}

// stutterReader returns (0, nil) on every other call, which io.Reader allows.
type stutterReader struct {
	r    io.Reader
	skip bool
}

func (s *stutterReader) Read(p []byte) (int, error) {
	s.skip = !s.skip
	if s.skip {
		return 0, nil
	}
	if len(p) > 1000 {
		p = p[:1000]
	}
	return s.r.Read(p)
}

// withZeros returns random data of n bytes with zero runs at the given [start, end) spans.
func withZeros(seed uint64, n int, spans ...[2]int) []byte {
	b := noZeroBlocks(randBytes(seed, n))
	for _, s := range spans {
		clear(b[s[0]:s[1]])
	}
	return b
}

func TestSplitterReassembles(t *testing.T) {
	inputs := map[string][]byte{
		"random-5M":       randBytes(10, 5<<20+17),
		"zeros-5M":        make([]byte, 5<<20),
		"zeros-odd":       make([]byte, 3*ZeroMin+100),
		"zero-start":      withZeros(11, 1<<20, [2]int{0, 3 * ZeroMin}),
		"zero-end":        withZeros(12, 1<<20, [2]int{1<<20 - 2*ZeroMin - 5, 1 << 20}),
		"zero-tail-short": withZeros(13, 1<<20, [2]int{1<<20 - 100, 1 << 20}),
	}
	for _, n := range []int{0, 1, 2, 4095, 4096, 4097, ZeroMin - 1, ZeroMin, ZeroMin + 1} {
		inputs[fmt.Sprintf("random-%d", n)] = randBytes(uint64(n), n)
		inputs[fmt.Sprintf("zeros-%d", n)] = make([]byte, n)
	}
	// Zero runs of lengths around the thresholds, on and off the 4 KiB grid.
	for _, l := range []int{ZeroBlock - 1, ZeroBlock, ZeroMin - ZeroBlock, ZeroMin - 1, ZeroMin, ZeroMin + 1,
		ZeroMin + ZeroBlock - 1, ZeroMin + ZeroBlock, 2*ZeroMin + 4097} {
		for _, at := range []int{8 * ZeroBlock, 8*ZeroBlock + 123, 300<<10 + 1} {
			inputs[fmt.Sprintf("run-%d-at-%d", l, at)] = withZeros(uint64(l+at), 768<<10, [2]int{at, at + l})
		}
	}
	// Many runs of assorted lengths in one image.
	var spans [][2]int
	for at, l := 4096, 100; at+l < 4<<20; at, l = at+l+50000+l%77777, l*3/2+ZeroBlock {
		spans = append(spans, [2]int{at, at + l})
	}
	inputs["many-runs"] = withZeros(14, 4<<20, spans...)

	specs := []string{byteSpec, alignedSpec, "fixed:64K", "cdc:64:256:1024:1"}
	for name, in := range inputs {
		for _, spec := range specs {
			c := mustChunker(t, spec, 1)
			var first []piece
			for rname, mk := range readers {
				if rname != "bytes" && rname != "half" && len(in) > 256<<10 && name != "many-runs" {
					continue // TestCDCDeterministic covers every reader on large inputs
				}
				ps := splitAll(t, mk(in), c)
				if got := join(ps); !bytes.Equal(got, in) {
					t.Fatalf("%s/%s/%s: pieces rebuild %d bytes that differ from the %d input bytes", name, spec, rname, len(got), len(in))
				}
				if first == nil {
					first = ps
				} else if len(ps) != len(first) {
					t.Fatalf("%s/%s/%s: %d pieces, other reader %d", name, spec, rname, len(ps), len(first))
				}
			}
		}
	}
}

// zeroSpans returns the zero pieces as [start, end) spans.
func zeroSpans(ps []piece) [][2]int64 {
	var out [][2]int64
	for _, p := range ps {
		if p.Zero {
			out = append(out, [2]int64{p.Off, p.Off + int64(p.Len)})
		}
	}
	return out
}

func TestSplitterZeroRuns(t *testing.T) {
	const n = 3 << 19
	t.Run("aligned-runs-exact", func(t *testing.T) {
		// On the 4 KiB grid with an aligned chunker, a run of whole blocks of at least
		// ZeroMin becomes exactly one zero piece covering exactly the run.
		for _, l := range []int{ZeroMin, ZeroMin + ZeroBlock, 5 * ZeroMin} {
			for _, at := range []int{ZeroBlock, 64 * ZeroBlock, 300 * ZeroBlock} {
				for _, spec := range []string{alignedSpec, "fixed:64K"} {
					ps := splitAll(t, bytes.NewReader(withZeros(1, n, [2]int{at, at + l})), mustChunker(t, spec, 1))
					got := zeroSpans(ps)
					if len(got) != 1 || got[0] != [2]int64{int64(at), int64(at + l)} {
						t.Fatalf("%s: run [%d,%d): zero pieces %v", spec, at, at+l, got)
					}
				}
			}
		}
	})
	t.Run("any-offset", func(t *testing.T) {
		// Anywhere, with any chunker, a run of ZeroMin+ZeroBlock bytes or more becomes a
		// zero piece that misses at most one partial block at either end.
		for _, l := range []int{ZeroMin + ZeroBlock, ZeroMin + ZeroBlock + 1, 3*ZeroMin + 999} {
			for _, at := range []int{1, 4095, 70001, 1<<20 + 3} {
				for _, spec := range []string{byteSpec, alignedSpec, "fixed:64K", "cdc:64:256:1024:1"} {
					ps := splitAll(t, bytes.NewReader(withZeros(2, n, [2]int{at, at + l})), mustChunker(t, spec, 1))
					got := zeroSpans(ps)
					if len(got) != 1 || got[0][0] < int64(at) || got[0][0] >= int64(at+ZeroBlock) ||
						got[0][1] > int64(at+l) || got[0][1] <= int64(at+l-ZeroBlock) {
						t.Fatalf("%s: run [%d,%d): zero pieces %v", spec, at, at+l, got)
					}
				}
			}
		}
	})
	t.Run("short-runs-stay-data", func(t *testing.T) {
		// Runs shorter than ZeroMin inside the image stay in data chunks.
		for _, l := range []int{ZeroBlock, ZeroMin - ZeroBlock, ZeroMin - 1} {
			for _, at := range []int{0, ZeroBlock, 12345} {
				for _, spec := range []string{byteSpec, alignedSpec} {
					ps := splitAll(t, bytes.NewReader(withZeros(3, n, [2]int{at, at + l})), mustChunker(t, spec, 1))
					if z := zeroSpans(ps); len(z) != 0 {
						t.Fatalf("%s: run of %d at %d gave zero pieces %v", spec, l, at, z)
					}
				}
			}
		}
	})
	t.Run("all-zero", func(t *testing.T) {
		ps := splitAll(t, bytes.NewReader(make([]byte, 10<<20+5)), mustChunker(t, alignedSpec, 1))
		if len(ps) != 1 || !ps[0].Zero || ps[0].Len != 10<<20+5 {
			t.Fatalf("10 MiB of zeros: %d pieces, first %+v", len(ps), ps[0])
		}
	})
}

// zeroReader yields n zero bytes quickly.
type zeroReader struct{ n int64 }

func (z *zeroReader) Read(p []byte) (int, error) {
	if z.n == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > z.n {
		p = p[:z.n]
	}
	clear(p)
	z.n -= int64(len(p))
	return len(p), nil
}

func TestSplitterSplitsHugeZeroRuns(t *testing.T) {
	tail := noZeroBlocks(randBytes(20, 300<<10))
	r := io.MultiReader(&zeroReader{MaxZeroRun + 2*ZeroMin + 5000}, bytes.NewReader(tail))
	s := NewSplitter(r, mustChunker(t, alignedSpec, 1))
	p, err := s.Next()
	if err != nil || !p.Zero || p.Len != MaxZeroRun || p.Off != 0 {
		t.Fatalf("first piece %+v, %v; want a zero run of MaxZeroRun", p, err)
	}
	p, err = s.Next()
	if err != nil || !p.Zero || p.Len != 2*ZeroMin+ZeroBlock || p.Off != MaxZeroRun {
		t.Fatalf("second piece %+v, %v; want the rest of the run in whole blocks", p, err)
	}
	var rest []byte
	for {
		p, err := s.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil || p.Zero {
			t.Fatalf("piece %+v, %v", p, err)
		}
		rest = append(rest, p.Data...)
	}
	want := append(make([]byte, 5000-ZeroBlock), tail...)
	if !bytes.Equal(rest, want) {
		t.Fatalf("data after the run: %d bytes, want %d", len(rest), len(want))
	}
}

func TestSplitterReadError(t *testing.T) {
	boom := errors.New("disk on fire")
	data := noZeroBlocks(randBytes(21, 3<<20))
	s := NewSplitter(io.MultiReader(bytes.NewReader(data), iotest.ErrReader(boom)), mustChunker(t, byteSpec, 1))
	var got int64
	for i := 0; i < 1000; i++ {
		p, err := s.Next()
		if err != nil {
			if !errors.Is(err, boom) {
				t.Fatalf("error %v, want the reader's", err)
			}
			if got > int64(len(data)) {
				t.Fatalf("%d bytes of pieces from %d bytes of input", got, len(data))
			}
			return
		}
		got += int64(p.Len)
	}
	t.Fatal("no error after the reader failed")
}
