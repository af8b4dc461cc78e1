package profile

import (
	"bytes"
	"context"
	"testing"

	"github.com/nowhere-boot/nowhere/internal/image"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// A recording reader notes each chunk once, in the order reads first touched it, and
// leaves zero runs out; the bytes it serves are the image's.
func TestRecordingNotesFirstReads(t *testing.T) {
	p := packImage(t, testImage())
	rec := NewRecorder(p.ix)
	r := Record(image.NewReader(p.ix, store.Verify(p.dir), image.Options{ReadAhead: -1}), rec)
	read := func(off int64, n int) {
		t.Helper()
		buf := make([]byte, n)
		if _, err := r.ReadAtContext(context.Background(), buf, off); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf, p.img[off:off+int64(n)]) {
			t.Fatalf("read at %d: wrong bytes", off)
		}
	}
	_, changed := rec.Since(0)
	read(10<<12+5, 100) // entry 10
	select {
	case <-changed:
	default:
		t.Fatal("a new entry did not signal")
	}
	read(2<<12, 3<<12)   // entries 2, 3, 4
	read(10<<12, 4096)   // 10 again
	read(31<<12, 18<<12) // 31, the zero run (entry 32), 33
	read(79<<12, 4096)   // entry 64, the last
	got, _ := rec.Since(0)
	want := []int{10, 2, 3, 4, 31, 33, 64}
	if len(got) != len(want) {
		t.Fatalf("recorded %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("recorded %v, want %v", got, want)
		}
	}
	if more, _ := rec.Since(5); len(more) != 2 || more[0] != 33 {
		t.Fatalf("Since(5) = %v", more)
	}
	rec.Stop()
	read(20<<12, 10)
	if rec.Len() != 7 {
		t.Fatal("a stopped recorder went on recording")
	}
	tr := rec.Trace()
	if len(tr.Items) != 7 || tr.Items[0].Off != 10<<12 || tr.Items[0].ID != p.ix.Entries[10].ID {
		t.Fatalf("trace %+v", tr.Items[:1])
	}
	// Reads outside the image are not noted (and do not panic).
	rec2 := NewRecorder(p.ix)
	rec2.Note(-1, 10)
	rec2.Note(p.ix.Size, 10)
	rec2.Note(0, 0)
	rec2.Note(p.ix.Size-1, 1<<20)
	if got, _ := rec2.Since(0); len(got) != 1 || got[0] != 64 {
		t.Fatalf("edge reads recorded %v, want [64]", got)
	}
}
