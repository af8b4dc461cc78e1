package mkfs

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
)

// fixExt4Times sets every in-use inode's access, change and creation times to its
// modification time and recomputes the inode checksums. mke2fs -d copies atime and ctime
// from the source tree, where atime changes whenever a file is read (so building twice
// gives two images) and ctime whenever the tree is copied or touched (so two versions of
// a tree differ in every inode); mtime is part of the content and stays.
//
// It only ever runs on an image mke2fs has just written, but checks bounds all the same.
func fixExt4Times(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	le := binary.LittleEndian
	sb := make([]byte, 1024)
	if _, err := f.ReadAt(sb, 1024); err != nil {
		return fmt.Errorf("ext4 superblock: %w", err)
	}
	bs := int64(1024) << le.Uint32(sb[24:])
	blocks := int64(le.Uint32(sb[4:]))
	incompat, roCompat := le.Uint32(sb[96:]), le.Uint32(sb[100:])
	descSize := int64(32)
	if incompat&0x80 != 0 { // 64bit
		blocks |= int64(le.Uint32(sb[0x150:])) << 32
		descSize = int64(le.Uint16(sb[0xFE:]))
	}
	firstData := int64(le.Uint32(sb[20:]))
	blocksPer, inodesPer := int64(le.Uint32(sb[32:])), int64(le.Uint32(sb[40:]))
	inodeSize := int64(le.Uint16(sb[88:]))
	if le.Uint16(sb[56:]) != 0xEF53 || bs > 65536 || blocksPer == 0 || inodesPer == 0 ||
		inodeSize < 128 || descSize < 32 || incompat&0x10 != 0 {
		return fmt.Errorf("ext4 superblock: unexpected geometry")
	}
	csum := roCompat&0x400 != 0 // metadata_csum
	gdtCsum := csum || roCompat&0x10 != 0
	tab := crc32.MakeTable(crc32.Castagnoli)
	raw := func(c uint32, p []byte) uint32 { return ^crc32.Update(^c, tab, p) } // ext4's crc32c: no inversions
	seed := raw(^uint32(0), sb[0x68:0x78])
	if incompat&0x2000 != 0 { // csum_seed
		seed = le.Uint32(sb[0x270:])
	}

	groups := (blocks - firstData + blocksPer - 1) / blocksPer
	gdt := make([]byte, groups*descSize)
	if _, err := f.ReadAt(gdt, (firstData+1)*bs); err != nil {
		return fmt.Errorf("ext4 group descriptors: %w", err)
	}
	for g := int64(0); g < groups; g++ {
		d := gdt[g*descSize:]
		table := int64(le.Uint32(d[8:]))
		if descSize >= 64 {
			table |= int64(le.Uint32(d[0x28:])) << 32
		}
		used := inodesPer
		if gdtCsum {
			if le.Uint16(d[0x12:])&1 != 0 { // INODE_UNINIT
				continue
			}
			unused := int64(le.Uint16(d[0x1C:]))
			if descSize >= 64 {
				unused |= int64(le.Uint16(d[0x32:])) << 16
			}
			used -= min(unused, inodesPer)
		}
		buf := make([]byte, used*inodeSize)
		if _, err := f.ReadAt(buf, table*bs); err != nil {
			return fmt.Errorf("ext4 inode table of group %d: %w", g, err)
		}
		for i := int64(0); i < used; i++ {
			in := buf[i*inodeSize : (i+1)*inodeSize]
			if le.Uint16(in) == 0 { // unused inode
				continue
			}
			mtime := le.Uint32(in[16:])
			le.PutUint32(in[8:], mtime)  // atime
			le.PutUint32(in[12:], mtime) // ctime
			extra := int64(0)
			if inodeSize > 128 {
				extra = int64(le.Uint16(in[128:]))
			}
			fits := func(off int64) bool { return 128+extra >= off && off <= inodeSize }
			if fits(0x8C) { // i_mtime_extra present: copy it to ctime_extra
				le.PutUint32(in[0x84:], le.Uint32(in[0x88:]))
			}
			if fits(0x90) {
				le.PutUint32(in[0x8C:], le.Uint32(in[0x88:])) // atime_extra
			}
			if fits(0x98) {
				le.PutUint32(in[0x90:], mtime)                // crtime
				le.PutUint32(in[0x94:], le.Uint32(in[0x88:])) // crtime_extra
			}
			if csum {
				hi := fits(0x84)
				in[0x7C], in[0x7D] = 0, 0
				if hi {
					in[0x82], in[0x83] = 0, 0
				}
				var n [4]byte
				le.PutUint32(n[:], uint32(g*inodesPer+i+1))
				c := raw(seed, n[:])
				c = raw(c, in[100:104]) // i_generation
				c = raw(c, in)
				le.PutUint16(in[0x7C:], uint16(c))
				if hi {
					le.PutUint16(in[0x82:], uint16(c>>16))
				}
			}
		}
		if _, err := f.WriteAt(buf, table*bs); err != nil {
			return fmt.Errorf("ext4 inode table of group %d: %w", g, err)
		}
	}
	return f.Sync()
}
