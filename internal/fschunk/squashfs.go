package fschunk

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// squashfs 4.0 on-disk constants (see the kernel's fs/squashfs/squashfs_fs.h).
const (
	sqMagic        = 0x73717368
	sqSuperSize    = 96
	sqMetaSize     = 8192 // uncompressed size of a metadata block
	sqMetaRaw      = 0x8000
	sqDataRaw      = 1 << 24
	sqNoFragment   = 0xFFFFFFFF
	sqNoTable      = 0xFFFFFFFFFFFFFFFF
	sqFragEntry    = 16
	sqCompGzip     = 1
	sqCompLZ4      = 5
	sqCompZstd     = 6
	sqMaxBlockSize = 1 << 20
	// sqSmallPiece: squashfs data is compressed, so a piece holds about three times the
	// file content of an ext4 piece of the same size; group accordingly (measured: 16, 24
	// and 32 KiB give 2234, 1930 and 1804 chunks in the Debian v2 image, for updates of
	// 16.1, 16.4 and 16.6 MiB).
	sqSmallPiece = 32 << 10
)

// squashfs is one squashfs image being read.
type squashfs struct {
	m         *meta
	cuts      *cutSet
	comp      uint16
	blockSize int64
	used      int64 // bytes_used: the end of the filesystem inside the image
	zstd      *zstd.Decoder
}

// readSquashfs lists each regular file's data blocks (as one range per file), each
// fragment block, and the metadata tables. Fragments and tables are chunked by content.
func readSquashfs(r io.ReaderAt, size int64) (*Layout, error) {
	m := newMeta(r, size)
	sb, err := m.read(0, sqSuperSize)
	if err != nil {
		return nil, fmt.Errorf("superblock: %w", err)
	}
	if le.Uint32(sb) != sqMagic {
		return nil, fmt.Errorf("%w: no squashfs magic", ErrCorrupt)
	}
	if major, minor := le.Uint16(sb[28:]), le.Uint16(sb[30:]); major != 4 || minor != 0 {
		return nil, fmt.Errorf("version %d.%d is not supported", major, minor)
	}
	s := &squashfs{
		m: m, cuts: &cutSet{size: size},
		comp:      le.Uint16(sb[20:]),
		blockSize: int64(le.Uint32(sb[12:])),
		used:      int64(le.Uint64(sb[40:])),
	}
	if s.blockSize < 4096 || s.blockSize > sqMaxBlockSize || s.blockSize&(s.blockSize-1) != 0 {
		return nil, fmt.Errorf("%w: block size %d", ErrCorrupt, s.blockSize)
	}
	if s.used < sqSuperSize || s.used > size {
		return nil, fmt.Errorf("%w: %d bytes used in a %d-byte image", ErrCorrupt, s.used, size)
	}
	switch s.comp {
	case sqCompGzip, sqCompLZ4:
	case sqCompZstd:
		s.zstd, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(4*sqMetaSize))
		if err != nil {
			return nil, err
		}
		defer s.zstd.Close()
	default:
		return nil, fmt.Errorf("compressor %d is not supported (gzip, lz4 and zstd are)", s.comp)
	}
	inodeCount := int64(le.Uint32(sb[4:]))
	fragCount := int64(le.Uint32(sb[16:]))
	inodeStart := int64(le.Uint64(sb[64:]))
	dirStart := int64(le.Uint64(sb[72:]))
	fragStart := le.Uint64(sb[80:])
	if inodeStart < sqSuperSize || dirStart < inodeStart || dirStart > s.used {
		return nil, fmt.Errorf("%w: inode table at %d-%d", ErrCorrupt, inodeStart, dirStart)
	}
	// The tables each start a metadata region; everything from the inode table on is
	// metadata (inodes, directories, fragment, export, id and xattr tables).
	for _, t := range []uint64{uint64(inodeStart), uint64(dirStart), fragStart, le.Uint64(sb[88:]), le.Uint64(sb[48:]), le.Uint64(sb[56:])} {
		if t != sqNoTable && int64(t) <= s.used {
			if err := s.cuts.add(int64(t), int64(t)); err != nil {
				return nil, err
			}
		}
	}
	if err := s.cuts.add(0, s.used); err != nil {
		return nil, err
	}
	if fragCount > 0 {
		if fragStart == sqNoTable {
			return nil, fmt.Errorf("%w: %d fragments without a fragment table", ErrCorrupt, fragCount)
		}
		if err := s.fragments(int64(fragStart), fragCount, inodeStart); err != nil {
			return nil, fmt.Errorf("fragment table: %w", err)
		}
	}
	table, err := s.metaRegion(inodeStart, dirStart)
	if err != nil {
		return nil, fmt.Errorf("inode table: %w", err)
	}
	if err := s.inodes(table, inodeCount, inodeStart); err != nil {
		return nil, fmt.Errorf("inode table: %w", err)
	}
	l := s.cuts.layout()
	l.Small = sqSmallPiece
	return l, nil
}

// metaBlock reads the metadata block at off and returns its uncompressed bytes and the
// offset just after it.
func (s *squashfs) metaBlock(off, limit int64) ([]byte, int64, error) {
	h, err := s.m.read(off, 2)
	if err != nil {
		return nil, 0, err
	}
	n := int64(le.Uint16(h) &^ sqMetaRaw)
	raw := le.Uint16(h)&sqMetaRaw != 0
	if n == 0 || n > sqMetaSize || off+2+n > limit {
		return nil, 0, fmt.Errorf("%w: metadata block of %d bytes at %d", ErrCorrupt, n, off)
	}
	b, err := s.m.read(off+2, int(n))
	if err != nil {
		return nil, 0, err
	}
	if !raw {
		if b, err = s.decompress(b); err != nil {
			return nil, 0, fmt.Errorf("metadata block at %d: %w", off, err)
		}
	}
	return b, off + 2 + n, nil
}

// decompress inflates one metadata block, refusing more than sqMetaSize bytes.
func (s *squashfs) decompress(b []byte) ([]byte, error) {
	var out []byte
	switch s.comp {
	case sqCompZstd:
		d, err := s.zstd.DecodeAll(b, make([]byte, 0, sqMetaSize))
		if err != nil {
			return nil, fmt.Errorf("%w: zstd: %v", ErrCorrupt, err)
		}
		out = d
	case sqCompGzip:
		zr, err := zlib.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("%w: zlib: %v", ErrCorrupt, err)
		}
		out, err = io.ReadAll(io.LimitReader(zr, sqMetaSize+1))
		if err != nil {
			return nil, fmt.Errorf("%w: zlib: %v", ErrCorrupt, err)
		}
	case sqCompLZ4:
		out = make([]byte, sqMetaSize)
		n, err := lz4.UncompressBlock(b, out)
		if err != nil {
			return nil, fmt.Errorf("%w: lz4: %v", ErrCorrupt, err)
		}
		out = out[:n]
	}
	if len(out) > sqMetaSize {
		return nil, fmt.Errorf("%w: metadata block inflates beyond %d bytes", ErrCorrupt, sqMetaSize)
	}
	return out, nil
}

// metaRegion reads and concatenates the metadata blocks in [start, end).
func (s *squashfs) metaRegion(start, end int64) ([]byte, error) {
	var out []byte
	for off := start; off < end; {
		b, next, err := s.metaBlock(off, end)
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
		off = next
	}
	return out, nil
}

// fragments adds the range of every fragment block. The fragment table's index (one
// 64-bit pointer per metadata block of 512 entries) follows the table itself.
func (s *squashfs) fragments(indexOff, count, dataEnd int64) error {
	perBlock := int64(sqMetaSize / sqFragEntry)
	blocks := (count + perBlock - 1) / perBlock
	idx, err := s.m.read(indexOff, int(blocks*8))
	if err != nil {
		return err
	}
	left := count
	for i := int64(0); i < blocks; i++ {
		b, _, err := s.metaBlock(int64(le.Uint64(idx[i*8:])), s.used)
		if err != nil {
			return err
		}
		n := min(left, perBlock)
		if int64(len(b)) < n*sqFragEntry {
			return fmt.Errorf("%w: fragment block %d holds %d bytes, want %d", ErrCorrupt, i, len(b), n*sqFragEntry)
		}
		for e := int64(0); e < n; e++ {
			start := int64(le.Uint64(b[e*sqFragEntry:]))
			sz := int64(le.Uint32(b[e*sqFragEntry+8:]) &^ sqDataRaw)
			if sz > s.blockSize || start+sz > dataEnd {
				return fmt.Errorf("%w: fragment %d of %d bytes at %d", ErrCorrupt, i*perBlock+e, sz, start)
			}
			if err := s.cuts.add(start, start+sz); err != nil {
				return err
			}
		}
		left -= n
	}
	return nil
}

// inodes walks the uncompressed inode table and adds each regular file's data blocks.
func (s *squashfs) inodes(t []byte, count, dataEnd int64) error {
	if count > int64(len(t))/16 {
		return fmt.Errorf("%w: %d inodes in %d bytes", ErrCorrupt, count, len(t))
	}
	p := 0
	need := func(n int) error {
		if n < 0 || p+n > len(t) {
			return fmt.Errorf("%w: inode table ends inside an inode at byte %d", ErrCorrupt, p)
		}
		return nil
	}
	for i := int64(0); i < count; i++ {
		if err := need(16); err != nil {
			return err
		}
		typ := le.Uint16(t[p:])
		p += 16
		var (
			size, start int64
			frag        uint32
			body        int // fixed bytes after the common header
		)
		switch typ {
		case 1: // basic directory
			body = 16
		case 2: // basic file
			if err := need(16); err != nil {
				return err
			}
			start, frag, size = int64(le.Uint32(t[p:])), le.Uint32(t[p+4:]), int64(le.Uint32(t[p+12:]))
			body = 16
		case 3, 10: // symlink, extended symlink: link count, target size, target
			if err := need(8); err != nil {
				return err
			}
			body = 8 + int(le.Uint32(t[p+4:]))
			if typ == 10 {
				body += 4
			}
		case 4, 5: // block, char device
			body = 8
		case 6, 7: // fifo, socket
			body = 4
		case 8: // extended directory: then index entries with names
			if err := need(24); err != nil {
				return err
			}
			n := int(le.Uint16(t[p+16:]))
			q := p + 24
			for j := 0; j < n; j++ {
				if q+12 > len(t) {
					return fmt.Errorf("%w: directory index beyond the inode table", ErrCorrupt)
				}
				q += 12 + int(le.Uint32(t[q+8:])) + 1
			}
			body = q - p
		case 9: // extended file
			if err := need(40); err != nil {
				return err
			}
			start, size, frag = int64(le.Uint64(t[p:])), int64(le.Uint64(t[p+8:])), le.Uint32(t[p+28:])
			body = 40
		case 11, 12: // extended block, char device
			body = 12
		case 13, 14: // extended fifo, socket
			body = 8
		default:
			return fmt.Errorf("%w: inode type %d at byte %d", ErrCorrupt, typ, p-16)
		}
		if err := need(body); err != nil {
			return err
		}
		p += body
		if typ != 2 && typ != 9 {
			continue
		}
		if size < 0 {
			return fmt.Errorf("%w: file size %d", ErrCorrupt, size)
		}
		blocks := size / s.blockSize
		if frag == sqNoFragment && size%s.blockSize != 0 {
			blocks++
		}
		if err := need(int(min(blocks, int64(len(t))) * 4)); err != nil {
			return err
		}
		end := start
		for b := int64(0); b < blocks; b++ {
			n := int64(le.Uint32(t[p:]) &^ sqDataRaw) // 0: a sparse block, nothing stored
			if n > s.blockSize {
				return fmt.Errorf("%w: data block of %d bytes", ErrCorrupt, n)
			}
			end += n
			p += 4
		}
		if blocks > 0 && end > start {
			if start < sqSuperSize || end > dataEnd {
				return fmt.Errorf("%w: file data at %d-%d", ErrCorrupt, start, end)
			}
			if err := s.cuts.add(start, end); err != nil {
				return err
			}
		}
	}
	return nil
}
