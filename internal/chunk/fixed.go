package chunk

// Fixed cuts at every multiple of Size in the image (an absolute grid, so a zero run in the
// middle of a block does not shift the blocks after it).
type Fixed struct{ Size int }

func (f Fixed) Cut(off int64, data []byte, final bool) int {
	n := f.Size - int(off%int64(f.Size))
	if n > len(data) {
		n = len(data)
	}
	return n
}

func (f Fixed) MaxLen() int { return f.Size }

func (f Fixed) Params() Params {
	s := uint32(f.Size)
	return Params{Kind: KindFixed, Min: s, Avg: s, Max: s, Align: s}
}
