package image

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/pack"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// packedImage packs img into a fresh store and returns a Reader over it.
func packedImage(t *testing.T, img []byte, opt Options) *Reader {
	t.Helper()
	dir, err := store.CreateDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dir.Close() })
	spec, err := chunk.ParseSpec("cdc:4K:16K:64K")
	if err != nil {
		t.Fatal(err)
	}
	res, err := pack.Run(context.Background(), bytes.NewReader(img), dir, pack.Options{Name: "t", Spec: spec, Created: time.Unix(1, 0)})
	if err != nil {
		t.Fatal(err)
	}
	return NewReader(res.Index, store.Verify(dir), opt)
}

// testImage has data, zero runs long enough to become zero entries, and an unaligned end.
func testImage() []byte {
	rnd := rand.New(rand.NewSource(3))
	img := make([]byte, 3<<20+1234)
	rnd.Read(img[:700<<10])
	rnd.Read(img[1<<20 : 2<<20])
	rnd.Read(img[3<<20:])
	return img
}

func TestReadSlicesMatchesReadAt(t *testing.T) {
	img := testImage()
	r := packedImage(t, img, Options{CacheBytes: 1 << 20})
	rnd := rand.New(rand.NewSource(4))
	ctx := context.Background()
	for i := 0; i < 300; i++ {
		off := rnd.Int63n(int64(len(img)) + 10)
		n := rnd.Intn(1<<20 + 1)
		want := img[min(off, int64(len(img))):min(off+int64(n), int64(len(img)))]

		vecs, got, err := r.ReadSlices(ctx, nil, off, n)
		if got != len(want) {
			t.Fatalf("ReadSlices(%d, %d): %d bytes, want %d (err %v)", off, n, got, len(want), err)
		}
		if wantEOF := off+int64(n) > int64(len(img)); wantEOF != errors.Is(err, io.EOF) || (err != nil && !errors.Is(err, io.EOF)) {
			t.Fatalf("ReadSlices(%d, %d): err %v", off, n, err)
		}
		if joined := bytes.Join(vecs, nil); !bytes.Equal(joined, want) {
			t.Fatalf("ReadSlices(%d, %d): bytes differ from the image", off, n)
		}

		p := make([]byte, n)
		k, err := r.ReadAt(p, off)
		if k != len(want) || !bytes.Equal(p[:k], want) || (err != nil && !errors.Is(err, io.EOF)) {
			t.Fatalf("ReadAt(%d, %d): %d bytes, err %v", off, n, k, err)
		}
	}
	for _, b := range zeroBuf {
		if b != 0 {
			t.Fatal("the shared zero buffer was written to")
		}
	}
}

func TestCacheKeepsRecentlyUsedChunks(t *testing.T) {
	c := newLRU(4 << 10)
	id := func(i byte) chunk.ID { return chunk.ID{i} }
	for i := byte(1); i <= 4; i++ {
		c.add(id(i), make([]byte, 1<<10))
	}
	// Full. Reading 1 and 3 gives them a second chance over 2 and 4.
	for _, i := range []byte{1, 3, 1, 3} {
		if _, ok := c.get(id(i)); !ok {
			t.Fatalf("chunk %d missing before any eviction", i)
		}
	}
	c.add(id(5), make([]byte, 1<<10))
	c.add(id(6), make([]byte, 1<<10))
	for i, want := range map[byte]bool{1: true, 3: true, 5: true, 6: true, 2: false, 4: false} {
		if got := c.contains(id(i)); got != want {
			t.Errorf("chunk %d cached = %v, want %v", i, got, want)
		}
	}
	if c.size != 4<<10 {
		t.Errorf("cache holds %d bytes, want %d", c.size, 4<<10)
	}
}
