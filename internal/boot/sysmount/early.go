// Package sysmount does the mounts of a boot: the kernel's pseudo filesystems, the image,
// the overlay that takes writes, and the switch to the new root.
package sysmount

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Mount is one mount(2) call.
type Mount struct {
	Source, Target, FSType string
	Flags                  uintptr
	Data                   string
}

// Early are the mounts /init needs before anything else: devtmpfs is built into Debian's
// kernel but not mounted automatically for an initramfs, and /run is a tmpfs that the
// image's init receives as it is (systemd then does not mount its own).
var Early = []Mount{
	{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
	{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
}

// Do mounts m, creating the target. A target that is already a mount point is left as
// it is (a kernel may have mounted devtmpfs itself).
func (m Mount) Do() error {
	if err := os.MkdirAll(m.Target, 0o755); err != nil {
		return fmt.Errorf("mkdir %s: %w", m.Target, errors.Unwrap(err))
	}
	if IsMountpoint(m.Target) {
		return nil
	}
	if err := unix.Mount(m.Source, m.Target, m.FSType, m.Flags, m.Data); err != nil {
		return fmt.Errorf("mount %s on %s: %w", m.FSType, m.Target, err)
	}
	return nil
}

// MountAll mounts ms in order and stops at the first failure.
func MountAll(ms []Mount) error {
	for _, m := range ms {
		if err := m.Do(); err != nil {
			return err
		}
	}
	return nil
}

// IsMountpoint reports whether dir is the root of a mount.
func IsMountpoint(dir string) bool {
	var st, parent unix.Stat_t
	if unix.Lstat(dir, &st) != nil || unix.Lstat(dir+"/..", &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev || st.Ino == parent.Ino
}
