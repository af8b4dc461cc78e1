package sysmount

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/nowhere-boot/nowhere/internal/fstype"
)

// Detect reads the superblock of a device or file and names its filesystem.
func Detect(dev string) (fstype.Type, error) {
	f, err := os.Open(dev)
	if err != nil {
		return fstype.Unknown, err
	}
	defer f.Close()
	head := make([]byte, fstype.HeaderSize)
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.ErrUnexpectedEOF {
		return fstype.Unknown, fmt.Errorf("read %s: %w", dev, err)
	}
	return fstype.Detect(head[:n]), nil
}

// ReadOnly mounts the filesystem on dev read-only at dir, with the type detected from its
// superblock. ext4 is mounted with noload: a read-only image must not replay a journal.
func ReadOnly(dev, dir string) (fstype.Type, error) {
	t, err := Detect(dev)
	if err != nil {
		return t, err
	}
	var data string
	switch t {
	case fstype.Squashfs, fstype.Erofs:
	case fstype.Ext4:
		data = "noload"
	default:
		return t, fmt.Errorf("%s: no squashfs, erofs or ext4 superblock", dev)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return t, err
	}
	if err := unix.Mount(dev, dir, string(t), unix.MS_RDONLY, data); err != nil {
		return t, fmt.Errorf("mount %s (%s) on %s: %w", dev, t, dir, err)
	}
	return t, nil
}

// ReadWrite mounts the filesystem on dev read-write at dir (a cache or overlay disk).
func ReadWrite(dev, dir string) (fstype.Type, error) {
	t, err := Detect(dev)
	if err != nil {
		return t, err
	}
	if t != fstype.Ext4 {
		return t, fmt.Errorf("%s: no ext4 filesystem on it (format it with mkfs.ext4)", dev)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return t, err
	}
	if err := unix.Mount(dev, dir, string(t), unix.MS_NOATIME, ""); err != nil {
		return t, fmt.Errorf("mount %s (%s) on %s: %w", dev, t, dir, err)
	}
	return t, nil
}
