package fusefs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// mountTable watches this process's mount table (/proc/self/mountinfo) for one mount,
// named by its device ("MAJOR:MINOR", the third field of a mountinfo line).
//
// It is how a server learns that its mount was detached (umount -l, fusermount -u -z,
// nowhere umount cutting off reads that wait for a mirror): the kernel tells a FUSE
// server nothing then, and a read it is still answering keeps the connection, and so the
// serve loop, alive. The file is opened once, at mount time: the boot daemon's /proc goes
// away with the initramfs at switch_root, the open file does not.
type mountTable struct {
	f        *os.File
	dev      string
	stopR    int // poll wakes on this pipe's read end when stop closes the write end
	stopW    int
	stopOnce sync.Once
}

// watchMountTable starts watching the mount whose root is mountpoint. It fails when the
// mount cannot be found in the table: a watcher that never saw its mount must not report
// it gone.
func watchMountTable(mountpoint string) (*mountTable, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(mountpoint, &st); err != nil {
		return nil, err
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	w := &mountTable{f: f, dev: fmt.Sprintf("%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev))}
	if present, err := w.present(); err != nil || !present {
		f.Close()
		if err == nil {
			err = fmt.Errorf("device %s not in /proc/self/mountinfo", w.dev)
		}
		return nil, err
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		f.Close()
		return nil, err
	}
	w.stopR, w.stopW = p[0], p[1]
	return w, nil
}

// present reads the whole table again and reports whether the mount is still in it.
func (w *mountTable) present() (bool, error) {
	if _, err := w.f.Seek(0, io.SeekStart); err != nil {
		return false, err
	}
	b, err := io.ReadAll(w.f)
	if err != nil {
		return false, err
	}
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		// id parent MAJOR:MINOR root mountpoint ...
		f := bytes.Fields(line)
		if len(f) > 2 && string(f[2]) == w.dev {
			return true, nil
		}
	}
	return false, nil
}

// recheckEvery bounds how long a change of the mount table can go unnoticed. The kernel
// marks the table's file with POLLPRI when mounts come and go, but not for every
// unmount (a lazy one, seen on 6.18, wakes nobody until the next mount anywhere): the
// table is read again this often regardless.
const recheckEvery = 2 * time.Second

// waitGone blocks until the mount has left the table (true) or stop was called, or the
// table can no longer be read (false).
func (w *mountTable) waitGone() bool {
	defer w.f.Close()
	defer unix.Close(w.stopR)
	for {
		fds := []unix.PollFd{{Fd: int32(w.f.Fd()), Events: unix.POLLPRI}, {Fd: int32(w.stopR), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, int(recheckEvery/time.Millisecond)); err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return false
		}
		if fds[1].Revents != 0 {
			return false
		}
		if gone, ok := w.goneTwice(); !ok || gone {
			return gone
		}
	}
}

// goneTwice reports whether the mount is missing from two reads of the table a moment
// apart (ok false: the table cannot be read). Once is not enough for a mount serving a
// root filesystem: every read it has would fail if a table read under concurrent mounts
// ever came back short.
func (w *mountTable) goneTwice() (gone, ok bool) {
	for i := 0; i < 2; i++ {
		if i > 0 {
			time.Sleep(100 * time.Millisecond)
		}
		present, err := w.present()
		if err != nil {
			return false, false
		}
		if present {
			return false, true
		}
	}
	return true, true
}

// stop ends a waitGone in progress, or the next one, at once. It may be called twice.
func (w *mountTable) stop() {
	w.stopOnce.Do(func() { unix.Close(w.stopW) })
}
