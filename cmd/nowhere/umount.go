package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/nowhere-boot/nowhere/internal/fusefs"
	"github.com/nowhere-boot/nowhere/internal/units"
)

func newUmountCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "umount MOUNTPOINT",
		Short:   "Unmount an image mounted with nowhere mount",
		Example: `  nowhere umount /mnt/nowhere`,
		Args:    cobra.ExactArgs(1),
		RunE:    func(cmd *cobra.Command, args []string) error { return runUmount(args[0]) },
	}
}

func runUmount(mnt string) error {
	if _, err := os.Stat(mnt); err != nil {
		return fmt.Errorf("umount %s: %w", mnt, unwrapPathError(err))
	}
	if ok, _ := fusefs.IsMountpoint(mnt); !ok {
		return fmt.Errorf("umount %s: not a mountpoint", mnt)
	}
	if fstype, err := mountType(mnt); err == nil && fstype != nowhereFstype {
		return fmt.Errorf("umount %s: not a nowhere mount (it is %s); use umount(8)", mnt, fstype)
	}
	err := unmount(mnt, false)
	if errors.Is(err, syscall.EBUSY) {
		// Reads waiting for a mirror that does not answer (forever, with --timeout 0)
		// keep the mount busy, and only the mount process can end them. Detached, the
		// mount is gone from here; the process sees that, cuts them off (EIO) and exits.
		// Anything else that keeps it busy (a loop device, an idle open file) is left
		// alone: unmounting under it would break it.
		if n := readsWaiting(mnt); n > 0 {
			if err := unmount(mnt, true); err != nil {
				return fmt.Errorf("umount %s: %w", mnt, err)
			}
			logf("umount %s: %s waiting for a mirror kept it busy: detached it; nowhere mount cuts %s off (EIO) and exits",
				mnt, units.Count(n, "read"), itOrThem(n, "it", "them"))
			return nil
		}
		return fmt.Errorf("umount %s: busy (a loop device or a process still uses it)", mnt)
	}
	if err != nil {
		return fmt.Errorf("umount %s: %w", mnt, err)
	}
	return nil
}

// unmount unmounts mnt, lazily (detaching it) if asked; without the privilege for that,
// as an ordinary user's FUSE mount, through the setuid helper.
func unmount(mnt string, lazy bool) error {
	flags := 0
	if lazy {
		flags = syscall.MNT_DETACH
	}
	err := syscall.Unmount(mnt, flags)
	if !errors.Is(err, syscall.EPERM) {
		return err
	}
	args := []string{"-u", mnt}
	if lazy {
		args = []string{"-u", "-z", mnt}
	}
	if out, ferr := exec.Command("fusermount3", args...).CombinedOutput(); ferr != nil {
		if strings.Contains(string(out), "busy") {
			return syscall.EBUSY
		}
		return errors.New(strings.TrimSpace(string(out)))
	}
	return nil
}

// statusWait bounds reading a mount's status: a mount process that is stopped or stuck
// must not hang umount.
const statusWait = 5 * time.Second

// readsWaiting returns how many reads the nowhere mount at mnt says are waiting (its
// status file), 0 when it cannot tell.
func readsWaiting(mnt string) int {
	got := make(chan int, 1)
	go func() {
		b, err := os.ReadFile(filepath.Join(mnt, statusName))
		if err != nil {
			got <- 0
			return
		}
		got <- waitingInReport(b)
	}()
	select {
	case n := <-got:
		return n
	case <-time.After(statusWait):
		return 0
	}
}

// nowhereFstype is the type /proc/self/mountinfo shows for a nowhere mount (FUSE's
// "fuse." and the Name fusefs.Mount gives the mount).
const nowhereFstype = "fuse.nowhere"

// mountType returns the filesystem type of the mount at mnt, the topmost one when several
// are stacked, from /proc/self/mountinfo.
func mountType(mnt string) (string, error) {
	abs, err := filepath.Abs(mnt)
	if err != nil {
		return "", err
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	fstype := ""
	for _, line := range strings.Split(string(data), "\n") {
		// id parent major:minor root mountpoint options [optional...] - fstype source super
		f := strings.Fields(line)
		if len(f) < 5 || unescapeMountinfo(f[4]) != abs {
			continue
		}
		for i, x := range f {
			if x == "-" && i+1 < len(f) {
				fstype = f[i+1] // later lines are mounted on top of earlier ones
				break
			}
		}
	}
	if fstype == "" {
		return "", fmt.Errorf("%s not in /proc/self/mountinfo", abs)
	}
	return fstype, nil
}

// unescapeMountinfo undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s)+0 && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
