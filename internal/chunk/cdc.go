package chunk

import "math/bits"

// CDC is content-defined chunking in the FastCDC style: a gear rolling hash over the bytes
// before each candidate cut, normalized chunking (a stricter mask before Avg, a looser one
// after it) and hard Min/Max limits.
//
// With Align > 1 candidate cuts are only the multiples of Align in the image, and the hash
// is computed over just the 64 bytes that end at each candidate. Block filesystems (ext4,
// erofs) move file data in whole blocks, so aligned cuts find the same boundaries after a
// shift, and hashing 64 of every 4096 bytes makes this chunker several times faster than
// byte-level CDC. Byte-level (Align 1) suits formats that pack data at arbitrary offsets
// (squashfs).
type CDC struct {
	min, avg, max, align int
	maskS, maskL         uint64 // cut when hash&mask == 0; maskS has more bits (harder)
}

// NewCDC returns a content-defined chunker. Callers validate parameters with ParseSpec;
// NewCDC assumes 0 < align <= min <= avg <= max and that all are multiples of align.
func NewCDC(min, avg, max, align int) *CDC {
	// Expected candidates per average chunk: avg/align. A cut probability of align/avg at
	// each candidate gives the average; normalization shifts one bit either side.
	n := bits.Len(uint(avg/align)) - 1 // log2(candidates per avg chunk)
	if n < 1 {
		n = 1
	}
	return &CDC{
		min: min, avg: avg, max: max, align: align,
		maskS: topMask(n + 1),
		maskL: topMask(n - 1),
	}
}

// topMask selects the n most significant bits: in a gear hash the high bits depend on the
// most input bytes (bit k on the last k+1 bytes).
func topMask(n int) uint64 {
	if n <= 0 {
		return 0
	}
	return ^uint64(0) << (64 - n)
}

func (c *CDC) MaxLen() int { return c.max }

func (c *CDC) Params() Params {
	return Params{Kind: KindCDC, Min: uint32(c.min), Avg: uint32(c.avg), Max: uint32(c.max), Align: uint32(c.align)}
}

func (c *CDC) Cut(off int64, data []byte, final bool) int {
	if len(data) <= c.min {
		return len(data)
	}
	limit := len(data)
	if limit > c.max {
		limit = c.max
	}
	if c.align > 1 {
		return c.cutAligned(off, data, limit)
	}
	return c.cutBytes(data, limit)
}

func (c *CDC) cutBytes(data []byte, limit int) int {
	var fp uint64
	i := c.min
	norm := c.avg
	if norm > limit {
		norm = limit
	}
	for ; i < norm; i++ {
		fp = fp<<1 + gear[data[i]]
		if fp&c.maskS == 0 {
			return i + 1
		}
	}
	for ; i < limit; i++ {
		fp = fp<<1 + gear[data[i]]
		if fp&c.maskL == 0 {
			return i + 1
		}
	}
	return limit
}

func (c *CDC) cutAligned(off int64, data []byte, limit int) int {
	a := int64(c.align)
	// First candidate end: the first multiple of align at or after off+min.
	first := int((off+int64(c.min)+a-1)/a*a - off)
	for end := first; end <= limit; end += c.align {
		var fp uint64
		for _, b := range data[end-64 : end] { // min >= align >= 64, so end-64 >= 0
			fp = fp<<1 + gear[b]
		}
		mask := c.maskL
		if end < c.avg {
			mask = c.maskS
		}
		if fp&mask == 0 {
			return end
		}
	}
	// No content cut: end at the last aligned offset within limit, so chunks stay aligned.
	if end := int((off+int64(limit))/a*a - off); end > 0 && limit < len(data) {
		return end
	}
	return limit
}

// gear maps each byte value to a pseudo-random 64-bit number. The table is part of the
// on-disk format (it decides where chunks fall): it is derived from a fixed seed with
// SplitMix64 and must never change.
var gear = func() (t [256]uint64) {
	x := uint64(0x6e6f7768657265) // "nowhere"
	for i := range t {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		t[i] = z ^ z>>31
	}
	return
}()
