package sysmount

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// InitCandidates are tried, in order, when the command line names no init (the kernel's
// own list).
var InitCandidates = []string{"/sbin/init", "/etc/init", "/bin/init", "/bin/sh"}

// FindInit returns the first candidate that is an executable file in root, resolving
// each path as if root were "/": Debian's /sbin/init is an absolute symlink to
// /lib/systemd/systemd and /sbin itself is a link to usr/sbin, which a plain stat of
// root+"/sbin/init" would follow out of the image.
func FindInit(root string, candidates []string) (string, error) {
	dir, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", root, err)
	}
	defer unix.Close(dir)
	var why []string
	for _, c := range candidates {
		fd, err := unix.Openat2(dir, c, &unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
		})
		if err != nil {
			why = append(why, fmt.Sprintf("%s: %v", c, err))
			continue
		}
		var st unix.Stat_t
		err = unix.Fstat(fd, &st)
		unix.Close(fd)
		switch {
		case err != nil:
			why = append(why, fmt.Sprintf("%s: %v", c, err))
		case st.Mode&unix.S_IFMT != unix.S_IFREG:
			why = append(why, c+": not a regular file")
		case st.Mode&0o111 == 0:
			why = append(why, c+": not executable")
		default:
			return c, nil
		}
	}
	return "", fmt.Errorf("no init in the image (%s)", joinReasons(why))
}

// Moved are the mounts that go with the system into its new root.
var Moved = []string{"/dev", "/proc", "/sys", "/run"}

// SwitchRoot makes newRoot the root of the system and executes init there, replacing
// this process (PID 1). It moves /dev /proc /sys /run into newRoot, moves newRoot onto
// "/", enters it, and frees the initramfs by deleting its files, without crossing into
// other mounts: the root daemon's FUSE mount stays where it is, out of sight of the new
// system. It returns only on failure.
func SwitchRoot(newRoot, init string, argv, env []string) error {
	for _, m := range Moved {
		if !IsMountpoint(m) {
			continue
		}
		target := filepath.Join(newRoot, m)
		if err := os.MkdirAll(target, 0o755); err != nil {
			return fmt.Errorf("switch_root: mkdir %s: %w", target, errors.Unwrap(err))
		}
		if err := unix.Mount(m, target, "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("switch_root: move %s to %s: %w", m, target, err)
		}
	}
	if err := unix.Chdir(newRoot); err != nil {
		return fmt.Errorf("switch_root: chdir %s: %w", newRoot, err)
	}
	old, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("switch_root: open /: %w", err)
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		unix.Close(old)
		return fmt.Errorf("switch_root: move %s to /: %w", newRoot, err)
	}
	if err := unix.Chroot("."); err != nil {
		unix.Close(old)
		return fmt.Errorf("switch_root: chroot: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		unix.Close(old)
		return fmt.Errorf("switch_root: chdir /: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(old, &st); err == nil {
		removeTree(old, st.Dev) // closes old
	} else {
		unix.Close(old)
	}
	if err := unix.Exec(init, argv, env); err != nil {
		return fmt.Errorf("switch_root: exec %s: %w", init, err)
	}
	return nil
}

// removeTree deletes what is in the directory dirfd on device dev, and nothing on another
// device, then closes dirfd. Failures are ignored: this only returns memory, and a
// leftover file harms nothing (it is unreachable from the new root).
func removeTree(dirfd int, dev uint64) {
	d := os.NewFile(uintptr(dirfd), "dir")
	defer d.Close()
	names, _ := d.Readdirnames(-1)
	for _, name := range names {
		var st unix.Stat_t
		if unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil || st.Dev != dev {
			continue // a mount point: its directory shows the mounted filesystem's device
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			unix.Unlinkat(dirfd, name, 0)
			continue
		}
		sub, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		removeTree(sub, dev)
		unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
	}
}

func joinReasons(why []string) string { return strings.Join(why, "; ") }
