package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/nowhere-boot/nowhere/internal/fusefs"
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
	err := syscall.Unmount(mnt, 0)
	if errors.Is(err, syscall.EPERM) {
		// Not root: FUSE mounts of ordinary users go through the setuid helper.
		if out, ferr := exec.Command("fusermount3", "-u", mnt).CombinedOutput(); ferr != nil {
			return fmt.Errorf("umount %s: %s", mnt, out)
		}
		return nil
	}
	if errors.Is(err, syscall.EBUSY) {
		return fmt.Errorf("umount %s: busy (a loop device or a process still uses it)", mnt)
	}
	if err != nil {
		return fmt.Errorf("umount %s: %w", mnt, err)
	}
	return nil
}
