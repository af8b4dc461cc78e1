package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
)

// umount refuses a mount that is not nowhere's (a tmpfs) with one line, and leaves it
// mounted.
func TestUmountRefusesOtherFilesystems(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(mnt, 0) })
	err := runUmount(mnt)
	if err == nil || !strings.Contains(err.Error(), "not a nowhere mount") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("umount of a tmpfs: %v, want one line saying it is not a nowhere mount", err)
	}
	if typ, err := mountType(mnt); err != nil || typ != "tmpfs" {
		t.Fatalf("after the refusal: %q, %v; want the tmpfs still mounted", typ, err)
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	if got := unescapeMountinfo(`/mnt/a\040b`); got != "/mnt/a b" {
		t.Fatalf("got %q", got)
	}
}

// umount finds the reads waiting in the line the status report writes.
func TestWaitingInReport(t *testing.T) {
	report := "image:   x\n" + fmt.Sprintf(readsLine, 7, "1.0 MiB", 2, 0, 3, "64 KiB") + "mirrors:\n"
	if got := waitingInReport([]byte(report)); got != 2 {
		t.Fatalf("waitingInReport: %d, want 2 from %q", got, report)
	}
	if got := waitingInReport([]byte("image: x\n")); got != 0 {
		t.Fatalf("waitingInReport without a reads line: %d, want 0", got)
	}
}
