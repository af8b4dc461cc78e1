package chunk

// A Chunker decides where chunks end. It sees the image as a stream and is asked, for the
// chunk starting at image offset off, how long that chunk is.
//
// Cut gets data, the bytes from off onwards: at least MaxLen() of them unless final is set,
// which means data ends where the image (or a data region bounded by a long zero run) ends.
// Cut returns n with 0 < n <= len(data). A Chunker must be deterministic: the same bytes at
// the same offsets give the same cuts, which is what makes packing reproducible and lets
// identical content dedup across images and versions.
//
// Filesystem-aware chunkers implement the same interface, with cut points they learned
// from the image's metadata before the stream starts.
type Chunker interface {
	Cut(off int64, data []byte, final bool) int
	MaxLen() int
	Params() Params
}

// Kind names a chunking algorithm in the index.
type Kind uint8

const (
	KindFixed Kind = 1 // fixed-size blocks on an absolute grid (the 2005 design)
	KindCDC   Kind = 2 // content-defined (FastCDC-style gear hash)
	// KindFS cuts at the file-data boundaries read from a filesystem image's metadata and
	// content-defined (with the CDC parameters recorded alongside) between them.
	KindFS Kind = 3
)

func (k Kind) String() string {
	switch k {
	case KindFixed:
		return "fixed"
	case KindCDC:
		return "cdc"
	case KindFS:
		return "fs"
	}
	return "unknown"
}

// Params are the chunking parameters recorded in an index. A seed or a later pack with the
// same Params cuts the same bytes the same way.
type Params struct {
	Kind  Kind
	Min   uint32 // smallest chunk (except at the end of a data region)
	Avg   uint32 // target average
	Max   uint32 // largest chunk
	Align uint32 // cuts fall only on multiples of Align (1 = any byte)
}
