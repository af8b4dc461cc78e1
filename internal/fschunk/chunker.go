package fschunk

import (
	"sort"

	"github.com/nowhere-boot/nowhere/internal/chunk"
)

// Chunker cuts at every cut point of a Layout and, between two cut points, by content with
// a CDC: a file's data is chunked from its own first byte, so the same file content gives
// the same chunks wherever mkfs placed it; metadata and gaps are chunked by content too.
// The CDC's maximum bounds every chunk.
type Chunker struct {
	cuts []int64
	cdc  *chunk.CDC
}

// NewChunker returns the filesystem-aware chunker for l with a CDC between cut points.
func NewChunker(l *Layout, cdc *chunk.CDC) *Chunker {
	return &Chunker{cuts: l.Cuts, cdc: cdc}
}

func (c *Chunker) MaxLen() int { return c.cdc.MaxLen() }

// Params are the CDC's with Kind fs: the cut points themselves come from the image.
func (c *Chunker) Params() chunk.Params {
	p := c.cdc.Params()
	p.Kind = chunk.KindFS
	return p
}

// Cut ends the chunk at the next cut point if it lies within data, else where the CDC
// cuts. A cut point closer than the CDC's minimum still ends the chunk: a small file is a
// chunk of its own rather than a part of whatever follows it.
func (c *Chunker) Cut(off int64, data []byte, final bool) int {
	i := sort.Search(len(c.cuts), func(i int) bool { return c.cuts[i] > off })
	if i < len(c.cuts) && c.cuts[i]-off <= int64(len(data)) {
		data, final = data[:c.cuts[i]-off], true
	}
	return c.cdc.Cut(off, data, final)
}

// CutPoints returns how many cut points the chunker uses.
func (c *Chunker) CutPoints() int { return len(c.cuts) }
