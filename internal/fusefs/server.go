package fusefs

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// Server is a mount being served, and the way to end it in bounded time. Every read's
// context derives from one context that ends when the owner's context does (a signal),
// when Unmount is called, or when the mount goes away from outside (umount, a lazy
// umount -l, the FUSE connection ending). A read still waiting then (for a mirror that
// does not answer, with no timeout) returns EIO at once: otherwise the kernel keeps the
// mount busy, and the serve loop alive, for as long as that read waits.
type Server struct {
	fuse       *fuse.Server
	mountpoint string
	strict     bool
	reads      *reads
	cancel     context.CancelCauseFunc
	table      *mountTable   // nil: the mount table cannot be watched here
	served     chan struct{} // closed when the serve loop has ended
	gone       chan struct{} // closed when the mount has ended, whoever ended it
}

// reads is the context every read uses, and what became of the reads.
type reads struct {
	ctx      context.Context
	inFlight atomic.Int64
	cutOff   atomic.Int64 // failed because the mount was going away
}

// ErrUnmounting is why reads end that were still running when the mount went away.
var ErrUnmounting = errors.New("the mount is going away")

// Ending says how Unmount ended a mount.
type Ending struct {
	// CutOff counts the reads that got EIO because the mount went away before they
	// could be answered (waiting for a mirror, most likely).
	CutOff int
	// Detached: the kernel kept the mount busy (a loop device, an open file) past the
	// grace period, so it was detached lazily: gone from the mount table, and what
	// still holds it gets errors.
	Detached bool
	// StillServing: the serve loop had not ended within the bound; something still
	// holds the detached mount. The process may exit anyway: the kernel then fails what
	// that holder asks.
	StillServing bool
}

func newServer(fs *fuse.Server, mountpoint string, strict bool, rs *reads, cancel context.CancelCauseFunc, logf func(string, ...any)) *Server {
	s := &Server{fuse: fs, mountpoint: mountpoint, strict: strict, reads: rs, cancel: cancel,
		served: make(chan struct{}), gone: make(chan struct{})}
	go func() { fs.Wait(); close(s.served) }()
	table, err := watchMountTable(mountpoint)
	if err != nil {
		logf("cannot watch the mount table (%v): an unmount from outside will not cut off reads waiting for a mirror", err)
	}
	s.table = table
	go s.watch()
	return s
}

// watch ends the reads once the mount has ended from either side.
func (s *Server) watch() {
	left := make(chan struct{})
	if s.table != nil {
		go func() {
			if s.table.waitGone() {
				close(left)
			}
		}()
	}
	select {
	case <-s.served:
	case <-left:
	}
	if s.table != nil {
		s.table.stop()
	}
	s.cancel(ErrUnmounting)
	close(s.gone)
}

// Gone is closed once the mount has ended: unmounted or detached (by Unmount or from
// outside), or its FUSE connection ended. Reads have been told to end by then.
func (s *Server) Gone() <-chan struct{} { return s.gone }

// Wait returns when the serve loop has ended.
func (s *Server) Wait() { <-s.served }

// Unmount ends every read still running (they get EIO), unmounts (lazily when the kernel
// keeps the mount busy past a quarter of bound: the reads just cut off need a moment to
// close their files) and waits for serving to end, all within about bound. It may be
// called after the mount went away from outside: then it only waits.
func (s *Server) Unmount(bound time.Duration) (Ending, error) {
	deadline := time.Now().Add(bound)
	s.cancel(ErrUnmounting)
	var e Ending
	select {
	case <-s.gone:
	default:
		detached, err := s.unmount(bound / 4)
		if err != nil {
			e.CutOff = int(s.reads.cutOff.Load())
			return e, err
		}
		e.Detached = detached
	}
	select {
	case <-s.served:
	case <-time.After(time.Until(deadline)):
		e.StillServing = true
	}
	// Reads told to end return within moments; one stuck elsewhere must not hold us.
	for s.reads.inFlight.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	e.CutOff = int(s.reads.cutOff.Load())
	return e, nil
}

// unmount tries a plain unmount until grace has passed, then detaches lazily. It
// reports whether it had to detach.
func (s *Server) unmount(grace time.Duration) (bool, error) {
	deadline := time.Now().Add(grace)
	delay := 5 * time.Millisecond
	for {
		err := s.detach(false)
		switch {
		case err == nil:
			return false, nil
		case errors.Is(err, syscall.EINVAL):
			return false, nil // no longer a mount: unmounted from outside a moment ago
		case !errors.Is(err, syscall.EBUSY):
			return false, err
		case time.Now().After(deadline):
			if err := s.detach(true); err != nil && !errors.Is(err, syscall.EINVAL) {
				return false, err
			}
			return true, nil
		}
		time.Sleep(delay)
		delay = min(2*delay, 200*time.Millisecond)
	}
}

// detach unmounts the mountpoint, lazily (MNT_DETACH) if asked. Without the privilege
// to do it directly it goes through the fusermount helper, as mounting did.
func (s *Server) detach(lazy bool) error {
	flags := 0
	if lazy {
		flags = syscall.MNT_DETACH
	}
	err := syscall.Unmount(s.mountpoint, flags)
	if !errors.Is(err, syscall.EPERM) || s.strict {
		return err
	}
	args := []string{"-u", s.mountpoint}
	if lazy {
		args = []string{"-u", "-z", s.mountpoint}
	}
	for _, helper := range []string{"fusermount3", "fusermount"} {
		out, herr := exec.Command(helper, args...).CombinedOutput()
		if errors.Is(herr, exec.ErrNotFound) {
			continue
		}
		if herr == nil {
			return nil
		}
		if strings.Contains(string(out), "busy") {
			return syscall.EBUSY
		}
		return fmt.Errorf("%s: %s", helper, strings.TrimSpace(string(out)))
	}
	return err
}
