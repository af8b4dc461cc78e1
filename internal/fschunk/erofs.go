package fschunk

import (
	"fmt"
	"io"
)

// erofs on-disk constants (see the kernel's fs/erofs/erofs_fs.h and zmap.c).
const (
	erofsSuperOff  = 1024
	erofsMagic     = 0xE0F5E1E2
	erofsSlot      = 32 // inodes are addressed in 32-byte slots from meta_blkaddr
	erofsDirent    = 12
	erofsNullAddr  = 0xFFFFFFFF
	erofsMaxDirLen = 64 << 20

	erofsFlatPlain   = 0
	erofsCompFull    = 1
	erofsFlatInline  = 2
	erofsCompCompact = 3
	erofsChunkBased  = 4

	erofsChunkIndexes = 0x20
	erofsChunkBits    = 0x1F

	zAdvise2B      = 0x0001
	zAdviseBig1    = 0x0002
	zAdviseBig2    = 0x0004
	zAdviseKnown   = zAdvise2B | zAdviseBig1 | zAdviseBig2
	zTypePlain     = 0
	zTypeHead1     = 1
	zTypeNonHead   = 2
	zTypeHead2     = 3
	zD0CblkCnt     = 1 << 11
	zMapHeaderSize = 8
)

type erofs struct {
	m      *meta
	cuts   *cutSet
	bs     int64
	blocks int64
	meta   int64 // byte offset of the inode area (meta_blkaddr)
	lclust int64 // lcluster indexes decoded (bounded)
}

// erofsInode is the part of an on-disk inode the layout needs.
type erofsInode struct {
	off    int64 // byte offset of the inode
	layout int
	isDir  bool
	size   int64
	u      uint32 // raw_blkaddr, compressed_blocks or chunk format, by layout
	tail   int64  // byte offset just after the inode and its xattrs
}

// readErofs walks the directory tree from the root inode and adds the physical data range
// of every inode: plain and inline-tail files' blocks, each chunk of chunk-based files, and
// the compressed blocks of compressed files (cut as one range per file).
func readErofs(r io.ReaderAt, size int64) (*Layout, error) {
	m := newMeta(r, size)
	sb, err := m.read(erofsSuperOff, 128)
	if err != nil {
		return nil, fmt.Errorf("superblock: %w", err)
	}
	if le.Uint32(sb) != erofsMagic {
		return nil, fmt.Errorf("%w: no erofs magic", ErrCorrupt)
	}
	bits := int(sb[12])
	if bits < 9 || bits > 16 {
		return nil, fmt.Errorf("%w: block size 2^%d", ErrCorrupt, bits)
	}
	e := &erofs{m: m, cuts: &cutSet{size: size}, bs: 1 << bits}
	e.blocks = int64(le.Uint32(sb[36:]))
	e.meta = int64(le.Uint32(sb[40:])) * e.bs
	if e.blocks*e.bs > size || e.meta >= size {
		return nil, fmt.Errorf("%w: %d blocks of %d bytes in a %d-byte image", ErrCorrupt, e.blocks, e.bs, size)
	}
	if extra := le.Uint16(sb[86:]); extra != 0 {
		return nil, fmt.Errorf("images with %d extra devices are not supported", extra)
	}
	root := int64(le.Uint16(sb[14:]))

	// Breadth-first over directories; each inode is visited once, and there cannot be
	// more inodes than the superblock counts or 32-byte slots in the image.
	limit := min(int64(le.Uint64(sb[16:])), size/erofsSlot, maxInodes)
	seen := map[int64]bool{root: true}
	queue := []int64{root}
	for len(queue) > 0 {
		nid := queue[0]
		queue = queue[1:]
		in, err := e.inode(nid)
		if err != nil {
			return nil, fmt.Errorf("inode %d: %w", nid, err)
		}
		if err := e.data(in); err != nil {
			return nil, fmt.Errorf("inode %d: %w", nid, err)
		}
		if !in.isDir {
			continue
		}
		kids, err := e.dir(in)
		if err != nil {
			return nil, fmt.Errorf("directory inode %d: %w", nid, err)
		}
		for _, k := range kids {
			if seen[k] {
				continue
			}
			if int64(len(seen)) >= limit {
				return nil, fmt.Errorf("%w: more than %d inodes", ErrCorrupt, limit)
			}
			seen[k] = true
			queue = append(queue, k)
		}
	}
	return e.cuts.layout(), nil
}

func (e *erofs) inode(nid int64) (*erofsInode, error) {
	if nid < 0 || nid > (e.m.size-e.meta)/erofsSlot {
		return nil, fmt.Errorf("%w: inode number out of range", ErrCorrupt)
	}
	off := e.meta + nid*erofsSlot
	b, err := e.m.read(off, min(64, int(e.m.size-off)))
	if err != nil {
		return nil, err
	}
	if len(b) < 32 {
		return nil, fmt.Errorf("%w: inode cut off by the image's end", ErrCorrupt)
	}
	format := le.Uint16(b)
	in := &erofsInode{off: off, layout: int(format>>1) & 7, u: le.Uint32(b[16:])}
	mode := le.Uint16(b[4:])
	in.isDir = mode&0xF000 == 0x4000
	isize := int64(32)
	if format&1 != 0 {
		if len(b) < 64 {
			return nil, fmt.Errorf("%w: inode cut off by the image's end", ErrCorrupt)
		}
		isize = 64
		in.size = int64(le.Uint64(b[8:]))
	} else {
		in.size = int64(le.Uint32(b[8:]))
	}
	if in.size < 0 || in.size > 1<<50 {
		return nil, fmt.Errorf("%w: size %d", ErrCorrupt, in.size)
	}
	xattr := int64(0)
	if n := int64(le.Uint16(b[2:])); n > 0 {
		xattr = 12 + 4*(n-1)
	}
	in.tail = off + isize + xattr
	return in, nil
}

// data adds the physical ranges of one inode's data.
func (e *erofs) data(in *erofsInode) error {
	switch in.layout {
	case erofsFlatPlain, erofsFlatInline:
		n := (in.size + e.bs - 1) / e.bs
		if in.layout == erofsFlatInline {
			n = in.size / e.bs // the tail is stored after the inode
		}
		if n == 0 {
			return nil
		}
		return e.blockRange(int64(in.u), n)
	case erofsChunkBased:
		return e.chunks(in)
	case erofsCompFull, erofsCompCompact:
		return e.compressed(in)
	}
	return fmt.Errorf("%w: data layout %d", ErrCorrupt, in.layout)
}

func (e *erofs) blockRange(start, n int64) error {
	if start < 0 || n <= 0 || start >= e.blocks || n > e.blocks-start {
		return fmt.Errorf("%w: %d blocks at block %d", ErrCorrupt, n, start)
	}
	return e.cuts.add(start*e.bs, (start+n)*e.bs)
}

// chunks adds the ranges of a chunk-based file, merging chunks that follow each other on
// disk (deduplicated chunks may point anywhere).
func (e *erofs) chunks(in *erofsInode) error {
	format := in.u & 0xFFFF
	bits := int64(format & erofsChunkBits)
	if bits > 30 {
		return fmt.Errorf("%w: chunk size 2^%d blocks", ErrCorrupt, bits)
	}
	chunkBlocks := int64(1) << bits
	chunkSize := e.bs << bits
	count := (in.size + chunkSize - 1) / chunkSize
	unit := int64(4)
	if format&erofsChunkIndexes != 0 {
		unit = 8
	}
	pos := (in.tail + unit - 1) / unit * unit
	if count > (e.m.size-pos)/unit {
		return fmt.Errorf("%w: %d chunks do not fit in the image", ErrCorrupt, count)
	}
	tab, err := e.m.read(pos, int(count*unit))
	if err != nil {
		return err
	}
	runStart, runEnd := int64(-1), int64(-1)
	flush := func() error {
		if runStart < 0 {
			return nil
		}
		return e.blockRange(runStart, runEnd-runStart)
	}
	left := (in.size + e.bs - 1) / e.bs
	for i := int64(0); i < count; i++ {
		var addr uint32
		if unit == 8 {
			addr = le.Uint32(tab[i*8+4:]) // advise u16, device id u16, blkaddr u32
		} else {
			addr = le.Uint32(tab[i*4:])
		}
		n := min(chunkBlocks, left)
		left -= n
		if addr == erofsNullAddr { // a hole
			continue
		}
		if int64(addr) != runEnd {
			if err := flush(); err != nil {
				return err
			}
			runStart = int64(addr)
		}
		runEnd = int64(addr) + n
	}
	return flush()
}

// compressed adds the blocks holding a compressed file's pclusters. erofs-utils writes
// them contiguously; the range starts at the lowest pcluster address found in the
// file's lcluster indexes and spans the inode's compressed block count. Files whose
// pclusters are laid out otherwise (deduplicated, packed tails, features this reader does
// not know) are left to content-defined chunking.
func (e *erofs) compressed(in *erofsInode) error {
	cblocks := int64(in.u)
	if cblocks == 0 || in.size == 0 {
		return nil
	}
	hpos := (in.tail + 7) / 8 * 8
	h, err := e.m.read(hpos, zMapHeaderSize)
	if err != nil {
		return err
	}
	advise := le.Uint16(h[4:])
	if advise&^zAdviseKnown != 0 || h[7]&0x80 != 0 {
		return nil
	}
	lbits := 12 + int64(h[7]&7)
	total := (in.size + (1 << lbits) - 1) >> lbits
	if e.lclust += total; e.lclust > 64*e.blocks+(1<<20) {
		return fmt.Errorf("%w: more compressed clusters than the image can hold", ErrCorrupt)
	}
	var idx zIndexes
	if in.layout == erofsCompFull {
		idx, err = e.fullIndexes(hpos+zMapHeaderSize+8, total)
	} else {
		idx, err = e.compactIndexes(hpos+zMapHeaderSize, total, lbits, advise)
	}
	if err != nil {
		return err
	}
	lo, hi := int64(-1), int64(-1)
	for lcn := int64(0); lcn < total; lcn++ {
		typ, clusterofs, pblk, err := idx(lcn)
		if err != nil {
			return err
		}
		// erofs-utils ends the indexes with a plain lcluster whose extent would start
		// at or past the end of the file; it has no blocks.
		if typ == zTypeNonHead || lcn<<lbits+clusterofs >= in.size {
			continue
		}
		if lo < 0 || pblk < lo {
			lo = pblk
		}
		hi = max(hi, pblk)
	}
	if lo < 0 || hi >= lo+cblocks {
		return nil
	}
	return e.blockRange(lo, cblocks)
}

// zIndexes decodes lcluster lcn: its type and, for a head or plain lcluster, the offset
// in it where its extent starts and the block address of its pcluster.
type zIndexes func(lcn int64) (typ int, clusterofs, pblk int64, err error)

// fullIndexes reads the 8-byte lcluster indexes (advise, cluster offset, block address or
// deltas) of the full layout.
func (e *erofs) fullIndexes(pos, total int64) (zIndexes, error) {
	if total > (e.m.size-pos)/8 {
		return nil, fmt.Errorf("%w: %d cluster indexes do not fit", ErrCorrupt, total)
	}
	tab, err := e.m.read(pos, int(total*8))
	if err != nil {
		return nil, err
	}
	return func(lcn int64) (int, int64, int64, error) {
		x := tab[lcn*8:]
		return int(le.Uint16(x) & 3), int64(le.Uint16(x[2:])), int64(le.Uint32(x[4:])), nil
	}, nil
}

// compactIndexes reads the compacted layout: packs of 2 (4-byte) or 16 (2-byte) lclusters,
// each lcluster a few bits of type and offset, each pack ending with a 32-bit base block
// address. This follows the kernel's z_erofs_load_compact_lcluster.
func (e *erofs) compactIndexes(ebase, total, lbits int64, advise uint16) (zIndexes, error) {
	initial4 := (32 - ebase%32) / 4
	if initial4 == 32/4 {
		initial4 = 0
	}
	var n2 int64
	if advise&zAdvise2B != 0 && initial4 < total {
		n2 = (total - initial4) / 16 * 16
	}
	tailBytes := (total - min(initial4, total) - n2) * 4
	length := min(initial4, total)*4 + n2*2 + tailBytes
	if length > e.m.size-ebase {
		return nil, fmt.Errorf("%w: cluster indexes do not fit", ErrCorrupt)
	}
	// Round out to whole packs (32 bytes covers both pack sizes) so decoding never reads
	// past the buffer.
	start := ebase / 32 * 32
	end := min((ebase+length+31)/32*32, e.m.size)
	buf, err := e.m.read(start, int(end-start))
	if err != nil {
		return nil, err
	}
	lomask := int64(1)<<lbits - 1
	big := advise&zAdviseBig1 != 0
	return func(lcn int64) (int, int64, int64, error) {
		pos := ebase
		shift := int64(2)
		switch {
		case lcn < initial4:
		case lcn-initial4 < n2:
			pos += initial4 * 4
			lcn -= initial4
			shift = 1
		default:
			pos += initial4*4 + n2*2
			lcn -= initial4 + n2
		}
		pos += lcn << shift
		var vcnt int64
		switch {
		case shift == 2 && lbits <= 14:
			vcnt = 2
		case shift == 1 && lbits == 12:
			vcnt = 16
		default:
			return 0, 0, 0, fmt.Errorf("%w: compact indexes with %d-bit clusters", ErrCorrupt, lbits)
		}
		packBytes := vcnt << shift
		encodebits := (packBytes - 4) * 8 / vcnt
		// Packs are aligned within the image block; blocks are multiples of 32 bytes.
		base := pos / packBytes * packBytes
		in := buf[base-start:]
		if int64(len(in)) < packBytes {
			return 0, 0, 0, fmt.Errorf("%w: cluster index pack cut off", ErrCorrupt)
		}
		in = in[:packBytes]
		i := (pos - base) >> shift
		decode := func(i int64) (int64, int) {
			bit := encodebits * i
			v := int64(le.Uint32(in[bit/8:])) >> (bit & 7)
			return v & lomask, int(v>>lbits) & 3
		}
		clusterofs, typ := decode(i)
		if typ == zTypeNonHead {
			return typ, 0, 0, nil
		}
		var nblk int64
		if !big {
			nblk = 1
			for i > 0 {
				i--
				lo, t := decode(i)
				if t == zTypeNonHead {
					i -= lo
				}
				if i >= 0 {
					nblk++
				}
			}
		} else {
			for i > 0 {
				i--
				lo, t := decode(i)
				if t == zTypeNonHead {
					if lo&zD0CblkCnt != 0 {
						i--
						nblk += lo &^ zD0CblkCnt
						continue
					}
					if lo <= 1 {
						return 0, 0, 0, fmt.Errorf("%w: big pcluster delta %d", ErrCorrupt, lo)
					}
					i -= lo - 2
					continue
				}
				nblk++
			}
		}
		return typ, clusterofs, int64(le.Uint32(in[packBytes-4:])) + nblk, nil
	}, nil
}

// dir returns the inode numbers a directory lists (without "." and "..").
func (e *erofs) dir(in *erofsInode) ([]int64, error) {
	if in.size > erofsMaxDirLen {
		return nil, fmt.Errorf("%w: directory of %d bytes", ErrCorrupt, in.size)
	}
	var body []byte
	switch in.layout {
	case erofsFlatPlain, erofsFlatInline:
		full := in.size
		if in.layout == erofsFlatInline {
			full = in.size / e.bs * e.bs
		}
		if full > 0 {
			b, err := e.m.read(int64(in.u)*e.bs, int(full))
			if err != nil {
				return nil, err
			}
			body = b
		}
		if rest := in.size - full; rest > 0 {
			b, err := e.m.read(in.tail, int(rest))
			if err != nil {
				return nil, err
			}
			body = append(body, b...)
		}
	default:
		return nil, fmt.Errorf("directory data layout %d is not supported", in.layout)
	}
	var kids []int64
	for blk := int64(0); blk < int64(len(body)); blk += e.bs {
		b := body[blk:min(blk+e.bs, int64(len(body)))]
		if len(b) < erofsDirent {
			return nil, fmt.Errorf("%w: directory block of %d bytes", ErrCorrupt, len(b))
		}
		first := int(le.Uint16(b[8:]))
		if first < erofsDirent || first%erofsDirent != 0 || first > len(b) {
			return nil, fmt.Errorf("%w: directory block with name offset %d", ErrCorrupt, first)
		}
		n := first / erofsDirent
		for i := 0; i < n; i++ {
			d := b[i*erofsDirent:]
			name := erofsName(b, i, n)
			if name == "." || name == ".." {
				continue
			}
			kids = append(kids, int64(le.Uint64(d)))
		}
	}
	return kids, nil
}

// erofsName returns the name of dirent i of the n in block b ("" if out of bounds).
func erofsName(b []byte, i, n int) string {
	start := int(le.Uint16(b[i*erofsDirent+8:]))
	end := len(b)
	if i+1 < n {
		end = int(le.Uint16(b[(i+1)*erofsDirent+8:]))
	}
	if start > end || end > len(b) {
		return ""
	}
	name := b[start:end]
	for j, c := range name {
		if c == 0 {
			name = name[:j]
			break
		}
	}
	return string(name)
}
