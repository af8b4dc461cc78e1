package fschunk

import (
	"hash/crc32"
	"sort"

	"github.com/nowhere-boot/nowhere/internal/chunk"
)

// smallPiece is the default size below which a piece (the bytes between two cut points: a
// small file, a directory block, a bit of metadata) is grouped with its small neighbours
// rather than made a chunk of its own: thousands of chunks of a few hundred bytes would
// each cost a request and a file in the store. 8 KiB (two blocks) gives the smallest Debian
// updates of ext4 (docs/chunking.md); the ext4 and squashfs readers set Layout.Small higher
// (fewer chunks for a cold read; squashfs pieces are compressed).
const smallPiece = 8 << 10

// groupOdds is the chance (1 in groupOdds) that a boundary between two small pieces ends a
// group once the group has the CDC's minimum size.
const groupOdds = 4

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Chunker cuts at the cut points of a Layout and, between two cut points, by content with
// a CDC: a file's data is chunked from its own first byte, so the same file content gives
// the same chunks wherever mkfs placed it; metadata and gaps are chunked by content too.
//
// A boundary between two small pieces is soft: once the group reaches the CDC's minimum, it
// ends a chunk only if a hash of the piece before it says so (or the group reached the
// CDC's average size). Runs of small files thus form groups whose edges depend on content,
// not on position, so a new small file changes the one group it joins (and at most the
// next), not every group after it.
//
// The CDC's maximum bounds every chunk.
type Chunker struct {
	cuts     []int64
	soft     []bool // soft[i]: cuts[i] separates two small pieces
	cdc      *chunk.CDC
	groupMin int
	groupMax int
}

// NewChunker returns the filesystem-aware chunker for l with a CDC between cut points.
func NewChunker(l *Layout, cdc *chunk.CDC) *Chunker {
	small := l.Small
	if small <= 0 {
		small = smallPiece
	}
	soft := make([]bool, len(l.Cuts))
	prev := int64(0)
	for i, c := range l.Cuts {
		next := l.Size
		if i+1 < len(l.Cuts) {
			next = l.Cuts[i+1]
		}
		soft[i] = c-prev < small && next-c < small
		prev = c
	}
	p := cdc.Params()
	return &Chunker{cuts: l.Cuts, soft: soft, cdc: cdc, groupMin: int(p.Min), groupMax: int(p.Avg)}
}

func (c *Chunker) MaxLen() int { return c.cdc.MaxLen() }

// Params are the CDC's with Kind fs: the cut points themselves come from the image.
func (c *Chunker) Params() chunk.Params {
	p := c.cdc.Params()
	p.Kind = chunk.KindFS
	return p
}

// Cut ends the chunk at the next cut point within data (skipping soft ones the content
// does not choose), else where the CDC cuts.
func (c *Chunker) Cut(off int64, data []byte, final bool) int {
	i := sort.Search(len(c.cuts), func(i int) bool { return c.cuts[i] > off })
	start, grouped := 0, false // start: where the piece ending at cuts[i] begins in data
	for ; i < len(c.cuts) && c.cuts[i]-off <= int64(len(data)); i++ {
		n := int(c.cuts[i] - off)
		if c.soft[i] && n < c.groupMax && (n < c.groupMin || crc32.Checksum(data[start:n], castagnoli)%groupOdds != 0) {
			start, grouped = n, true
			continue
		}
		if grouped {
			return n
		}
		return c.cdc.Cut(off, data[:n], true)
	}
	return c.cdc.Cut(off, data, final)
}

// HardCuts returns the cut points that always end a chunk (all but those between two
// small pieces).
func (c *Chunker) HardCuts() []int64 {
	var out []int64
	for i, x := range c.cuts {
		if !c.soft[i] {
			out = append(out, x)
		}
	}
	return out
}
