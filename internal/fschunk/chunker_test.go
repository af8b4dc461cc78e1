package fschunk

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/nowhere-boot/nowhere/internal/chunk"
)

// synthetic lays out pieces of the given sizes (random bytes, 4 KiB multiples like block
// filesystems) and returns the image and its layout.
func synthetic(sizes []int, seed uint64) ([]byte, *Layout) {
	rng := rand.New(rand.NewPCG(seed, 9))
	var img []byte
	var cuts []int64
	for _, n := range sizes {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(rng.Uint32() | 1) // never zero: no zero runs
		}
		img = append(img, p...)
		cuts = append(cuts, int64(len(img)))
	}
	return img, &Layout{Size: int64(len(img)), Cuts: cuts[:len(cuts)-1]}
}

// cutImage chunks img with the fs-aware chunker and returns the chunks (offset, id).
func cutImage(t *testing.T, img []byte, l *Layout) (offs []int64, ids map[[32]byte]int) {
	t.Helper()
	ck := NewChunker(l, chunk.NewCDC(16<<10, 64<<10, 256<<10, 4096))
	sp := chunk.NewSplitter(bytes.NewReader(img), ck)
	ids = map[[32]byte]int{}
	var joined []byte
	for {
		p, err := sp.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if p.Len > ck.MaxLen() {
			t.Fatalf("chunk of %d bytes above the maximum %d", p.Len, ck.MaxLen())
		}
		offs = append(offs, p.Off)
		ids[sha256.Sum256(p.Data)]++
		joined = append(joined, p.Data...)
	}
	if !bytes.Equal(joined, img) {
		t.Fatal("chunks do not reassemble the image")
	}
	return offs, ids
}

// Large pieces always start a chunk; runs of small pieces are grouped, and a piece
// inserted among small ones changes only the group it joins.
func TestChunkerGroupsSmallPieces(t *testing.T) {
	var sizes []int
	for i := 0; i < 300; i++ {
		n := 4096 // small
		if i%7 == 6 {
			n = 12288 // not small
		}
		sizes = append(sizes, n)
		if i%50 == 49 {
			sizes = append(sizes, 300<<10) // a large file
		}
	}
	img, l := synthetic(sizes, 1)
	offs, ids := cutImage(t, img, l)
	bounds := map[int64]bool{}
	for _, o := range offs {
		bounds[o] = true
	}
	soft := 0
	for i, c := range l.Cuts {
		prev := int64(0)
		if i > 0 {
			prev = l.Cuts[i-1]
		}
		next := l.Size
		if i+1 < len(l.Cuts) {
			next = l.Cuts[i+1]
		}
		small := c-prev < smallPiece && next-c < smallPiece
		if !small && !bounds[c] {
			t.Fatalf("hard cut %d is not a chunk boundary", c)
		}
		if small {
			soft++
		}
	}
	if len(offs) >= len(l.Cuts) || soft == 0 {
		t.Fatalf("%d chunks for %d cut points (%d soft): small pieces were not grouped", len(offs), len(l.Cuts), soft)
	}

	// Insert one 4 KiB piece among the small ones (a new small file; everything after it
	// moves by 4 KiB).
	ins := append(append(append([]int{}, sizes[:120]...), 4096), sizes[120:]...)
	// Only its layout: synthetic draws bytes in order, so img2 is rebuilt from img for the
	// old pieces to keep their bytes.
	_, l2 := synthetic(ins, 1)
	at := 0
	for _, n := range sizes[:120] {
		at += n
	}
	newPiece := bytes.Repeat([]byte{0x5a, 0xa5, 0x33}, 4096)[:4096]
	img2 := append(append(append([]byte{}, img[:at]...), newPiece...), img[at:]...)
	_, ids2 := cutImage(t, img2, l2)
	changed := 0
	for id := range ids2 {
		if ids[id] == 0 {
			changed++
		}
	}
	if changed > 2 {
		t.Fatalf("inserting one small piece changed %d chunks, want at most 2", changed)
	}
}
