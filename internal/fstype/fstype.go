// Package fstype recognises filesystem images by their superblock, to pick the chunking at
// pack time and the filesystem type at mount and boot time.
package fstype

import "encoding/binary"

// Type is a filesystem nowhere knows how to chunk and mount.
type Type string

const (
	Unknown  Type = ""
	Squashfs Type = "squashfs"
	Erofs    Type = "erofs"
	Ext4     Type = "ext4" // also ext2/ext3: the kernel's ext4 driver mounts them
)

// HeaderSize is how many bytes from the start of an image Detect needs.
const HeaderSize = 2048

// Detect returns the filesystem whose superblock starts head (the image's first bytes).
func Detect(head []byte) Type {
	le := binary.LittleEndian
	switch {
	case len(head) >= 4 && string(head[:4]) == "hsqs":
		return Squashfs
	case len(head) >= 1028 && le.Uint32(head[1024:]) == 0xE0F5E1E2:
		return Erofs
	case len(head) >= 1082 && le.Uint16(head[1024+56:]) == 0xEF53:
		return Ext4
	}
	return Unknown
}

// ChunkAlign is the alignment content-defined chunking should use for an image of type t:
// byte-level for squashfs (it packs data at arbitrary byte offsets), 4 KiB blocks for block
// filesystems and anything unknown (raw disks are block devices too).
func ChunkAlign(t Type) int {
	if t == Squashfs {
		return 1
	}
	return 4096
}
