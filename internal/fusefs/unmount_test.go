package fusefs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/testutil"
)

// stuckContent never answers a read until the read's context ends, like a mirror that is
// gone under a mount with no timeout.
type stuckContent struct{ waiting atomic.Int32 }

func (c *stuckContent) Size() int64 { return 1 << 20 }

func (c *stuckContent) ReadAtContext(ctx context.Context, p []byte, off int64) (int, error) {
	c.waiting.Add(1)
	defer c.waiting.Add(-1)
	<-ctx.Done()
	return 0, context.Cause(ctx)
}

// unmountBound is what the tests give Unmount; the waits on its effects are twice that.
const unmountBound = 10 * time.Second

func needFUSE(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		testutil.Missing(t, "mounting FUSE directly needs root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		testutil.Missing(t, "no /dev/fuse in this kernel")
	}
}

// mountStuck mounts a stuckContent and starts one read of it (direct I/O, so the page
// cache cannot answer). It returns the server, the content and the read's result.
func mountStuck(t *testing.T, opt Options) (*Server, *stuckContent, string, <-chan error) {
	t.Helper()
	needFUSE(t)
	mnt := t.TempDir()
	c := &stuckContent{}
	srv, err := Mount(mnt, []File{{Name: "x.img", Content: c}}, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = srv.Unmount(unmountBound)
		_ = syscall.Unmount(mnt, syscall.MNT_DETACH)
	})
	done := make(chan error, 1)
	go func() {
		f, err := os.OpenFile(filepath.Join(mnt, "x.img"), os.O_RDONLY|syscall.O_DIRECT, 0)
		if err != nil {
			done <- err
			return
		}
		defer f.Close()
		buf := make([]byte, 64<<10) // O_DIRECT wants an aligned buffer; Go's large allocations are
		_, err = f.ReadAt(buf, 0)
		done <- err
	}()
	deadline := time.Now().Add(2 * unmountBound)
	for c.waiting.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the read never reached the content")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return srv, c, mnt, done
}

// wantEIO waits for the read's result and checks it is EIO.
func wantEIO(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if !errors.Is(err, syscall.EIO) {
			t.Fatalf("the stuck read ended with %v, want EIO", err)
		}
	case <-time.After(2 * unmountBound):
		t.Fatalf("the stuck read still waits %s later", 2*unmountBound)
	}
}

// Unmount with a read stuck on its content: the read gets EIO, the mount goes away
// (plainly: the reader closes its file once its read has failed), and the ending counts
// the read as cut off.
func TestUnmountCutsOffAStuckRead(t *testing.T) {
	srv, _, mnt, done := mountStuck(t, Options{})
	e, err := srv.Unmount(unmountBound)
	if err != nil {
		t.Fatalf("Unmount: %v", err)
	}
	wantEIO(t, done)
	if e.CutOff != 1 || e.StillServing {
		t.Errorf("ending %+v, want 1 read cut off and serving ended", e)
	}
	if ok, _ := IsMountpoint(mnt); ok {
		t.Errorf("%s is still a mountpoint after Unmount", mnt)
	}
}

// The owner's context ending (a signal, in nowhere mount) ends the stuck read with EIO at
// once, before any unmount.
func TestOwnersContextCutsOffReads(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, _, _, done := mountStuck(t, Options{Context: ctx})
	cancel()
	wantEIO(t, done)
}

// A lazy unmount from outside (umount -l) tells the server nothing; it finds out from the
// mount table, cuts the read off and ends serving.
func TestLazyUnmountFromOutsideCutsOffReads(t *testing.T) {
	srv, _, mnt, done := mountStuck(t, Options{})
	if err := syscall.Unmount(mnt, syscall.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	select {
	case <-srv.Gone():
	case <-time.After(2 * unmountBound):
		t.Fatalf("Gone not closed %s after a lazy unmount", 2*unmountBound)
	}
	wantEIO(t, done)
	e, err := srv.Unmount(unmountBound)
	if err != nil || e.CutOff != 1 || e.StillServing || e.Detached {
		t.Errorf("Unmount after the lazy unmount: %+v, %v; want 1 read cut off, serving ended, nothing detached by us", e, err)
	}
}

// A mount kept busy by an open file past the grace period is detached lazily, and
// Unmount says so.
func TestUnmountDetachesABusyMount(t *testing.T) {
	needFUSE(t)
	mnt := t.TempDir()
	srv, err := Mount(mnt, []File{{Name: "x.img", Content: &stuckContent{}}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(mnt, syscall.MNT_DETACH) })
	f, err := os.Open(filepath.Join(mnt, "x.img"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := srv.Unmount(2 * time.Second) // the open file holds the mount past the bound
	if err != nil {
		t.Fatalf("Unmount: %v", err)
	}
	if !e.Detached || !e.StillServing || e.CutOff != 0 {
		t.Errorf("ending %+v, want detached, still serving (the file is open), nothing cut off", e)
	}
	if ok, _ := IsMountpoint(mnt); ok {
		t.Errorf("%s is still a mountpoint after a lazy detach", mnt)
	}
	served := make(chan struct{})
	go func() { srv.Wait(); close(served) }()
	f.Close() // the last user: the kernel ends the connection, the serve loop ends
	select {
	case <-served:
	case <-time.After(2 * unmountBound):
		t.Fatalf("serving did not end %s after the last file was closed", 2*unmountBound)
	}
}
