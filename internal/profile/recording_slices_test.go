package profile

import (
	"bytes"
	"context"
	"testing"

	"github.com/nowhere-boot/nowhere/internal/image"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// spySlicer is content whose ReadSlices counts its calls.
type spySlicer struct {
	*image.Reader
	calls int
}

func (s *spySlicer) ReadSlices(ctx context.Context, vecs [][]byte, off int64, n int) ([][]byte, int, error) {
	s.calls++
	return s.Reader.ReadSlices(ctx, vecs, off, n)
}

// The recording stack as mount and the boot daemon build it (Record over an image.Reader)
// keeps the zero-copy path: ReadSlices reaches the reader's ReadSlices, the read is noted,
// and the views hold the image's bytes.
func TestRecordingForwardsReadSlices(t *testing.T) {
	p := packImage(t, testImage())
	rec := NewRecorder(p.ix)
	spy := &spySlicer{Reader: image.NewReader(p.ix, store.Verify(p.dir), image.Options{ReadAhead: -1})}
	var c Content = Record(spy, rec)
	s, ok := c.(slicer)
	if !ok {
		t.Fatal("Recording does not implement ReadSlices")
	}
	vecs, n, err := s.ReadSlices(context.Background(), nil, 2<<12, 3<<12)
	if err != nil || n != 3<<12 {
		t.Fatalf("ReadSlices: n %d, err %v", n, err)
	}
	if spy.calls != 1 {
		t.Fatalf("the reader's ReadSlices was called %d times, want 1", spy.calls)
	}
	if got := bytes.Join(vecs, nil); !bytes.Equal(got, p.img[2<<12:5<<12]) {
		t.Fatal("wrong bytes")
	}
	if got, _ := rec.Since(0); len(got) != 3 {
		t.Fatalf("recorded %v, want entries 2, 3, 4", got)
	}
	if Record(spy, rec).Unwrap() != Content(spy) {
		t.Fatal("Unwrap does not return the wrapped content")
	}
}
