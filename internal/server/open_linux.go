package server

import (
	"errors"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// opener opens files inside the store for reading. os.Root walks a path one component at a
// time (for chunks/XXXX/ID.cacnk: three openat and two close calls per request); with a
// handle on the store directory, openat2 with RESOLVE_BENEATH does the same walk in the
// kernel in one call and refuses the same escapes (.., symlinks or absolute paths leading
// out of the store). Chunk requests come by the thousand on a cold read, so the calls count.
// Kernels without openat2 (before 5.6), or a seccomp filter refusing it, fall back to
// os.Root for good.
type opener struct {
	root  *os.Root
	dir   *os.File // the store directory, kept open; nil: os.Root only
	dirfd int
	noAt2 atomic.Bool
}

func newOpener(root *os.Root) *opener {
	o := &opener{root: root}
	if d, err := root.Open("."); err == nil {
		if rc, err := d.SyscallConn(); err == nil {
			_ = rc.Control(func(fd uintptr) { o.dirfd = int(fd) })
			o.dir = d
		} else {
			d.Close()
		}
	}
	return o
}

// open opens name (cleaned, relative to the store) with flag.
func (o *opener) open(name string, flag int) (*os.File, error) {
	if o.dir != nil && !o.noAt2.Load() {
		for try := 0; try < 3; try++ {
			fd, err := unix.Openat2(o.dirfd, name, &unix.OpenHow{
				Flags:   uint64(flag | unix.O_CLOEXEC),
				Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
			})
			switch {
			case err == nil:
				return os.NewFile(uintptr(fd), name), nil
			case errors.Is(err, unix.EINTR), errors.Is(err, unix.EAGAIN):
				continue // EAGAIN: a concurrent rename raced the lookup
			case errors.Is(err, unix.ENOSYS):
				o.noAt2.Store(true)
			case errors.Is(err, unix.EPERM):
				// A seccomp filter, or a real refusal: os.Root tells which.
			default:
				return nil, &os.PathError{Op: "open", Path: name, Err: err}
			}
			break
		}
	}
	return o.root.OpenFile(name, flag, 0)
}
