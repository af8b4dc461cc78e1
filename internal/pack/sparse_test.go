package pack

import (
	"context"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// A sparse file packed from its *os.File (holes skipped with SEEK_DATA) must give exactly
// the index of the same bytes read through a pipe-like reader.
func TestPackSparseFileSameAsStream(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sparse.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewSource(7))
	for _, off := range []int64{0, 3<<20 + 77, 20 << 20, 47<<20 + 4095} {
		b := make([]byte, 200<<10)
		rnd.Read(b[:100<<10]) // half random, half zeros that are written, not holes
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(80<<20 + 5); err != nil {
		t.Fatal(err)
	}
	f.Close()

	spec, err := chunk.ParseSpec(chunk.DefaultSpec)
	if err != nil {
		t.Fatal(err)
	}
	pack := func(r io.Reader) *Result {
		w, err := store.CreateDir(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		res, err := Run(context.Background(), r, w, Options{Name: "sparse", Spec: spec, Created: time.Unix(1, 0)})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	in, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	sparse := pack(in)
	in2, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer in2.Close()
	stream := pack(struct{ io.Reader }{in2})

	if !slices.Equal(sparse.Index.Entries, stream.Index.Entries) {
		t.Fatalf("packing the sparse file gave %d entries, the same bytes as a stream %d (or different ones)",
			len(sparse.Index.Entries), len(stream.Index.Entries))
	}
	if sparse.Index.Size != 80<<20+5 || sparse.ZeroBytes < 70<<20 {
		t.Fatalf("size %d, zero bytes %d: want 80 MiB + 5, mostly zeros", sparse.Index.Size, sparse.ZeroBytes)
	}
}
