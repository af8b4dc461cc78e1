package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// unmountBound is how long the tests give a mount process, once told to go, to cut off its
// reads, unmount and exit. nowhere promises 10 s (docs/mirrors.md); twice that absorbs a
// loaded 2-core machine. It is an upper bound on a wait, not a speed assertion.
const unmountBound = 20 * time.Second

// TestUnmountCutsOffReadsWaitingForADeadMirror mounts with --timeout 0 (wait forever, the
// boot default) from a served store, stops the server, and starts a dd of a region
// nothing has read yet, which blocks waiting for a mirror. Then the mount is told to go,
// three ways: SIGTERM; `nowhere umount MNT`; the reader killed first (SIGKILL, after which
// it still waits in the kernel for its read's answer) and then SIGTERM. Each time the mount
// process must exit within unmountBound, saying in one line that a read got EIO; the
// reader must end (with EIO, when it was not killed), and the mountpoint must no longer be
// a mount.
func TestUnmountCutsOffReadsWaitingForADeadMirror(t *testing.T) {
	f := getFixture(t)
	ix := loadIndex(t, f.store, "ext4", 1)
	// A MiB of stored data past the first MiB: nothing reads it before the dd does.
	off := dataRegion(t, ix, 2<<20, false) + 1<<20
	cases := []struct {
		name       string
		killReader bool
		goAway     func(t *testing.T, m *foregroundMount)
	}{
		{"SIGTERM", false, func(t *testing.T, m *foregroundMount) { m.signal(t, syscall.SIGTERM) }},
		{"nowhere umount", false, func(t *testing.T, m *foregroundMount) {
			r := runNowhere(t, "umount", m.dir)
			if r.code != 0 {
				t.Errorf("nowhere umount %s with a read waiting for a dead mirror: exit %d: %s", m.dir, r.code, r.stderr)
			}
			t.Logf("nowhere umount: %s", strings.TrimSpace(r.stderr))
		}},
		{"reader killed, then SIGTERM", true, func(t *testing.T, m *foregroundMount) { m.signal(t, syscall.SIGTERM) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := startNowhereServe(t, f.store)
			m := startForegroundMount(t, srv.url+"/images/ext4", "ext4", "--timeout", "0", "--prefetch", "0")
			srv.Stop(t)

			dd := startReader(t, "dd", "if="+m.file, "of=/dev/null", "bs=64K", "count=1", "iflag=direct",
				"skip="+strconv.FormatInt(off/(64<<10), 10))
			if !waitFor(daemonWait, func() bool { return m.readsWaiting() > 0 || dd.exited() }) {
				t.Fatalf("no read waiting in %s/.status within %s:\n%s", m.dir, daemonWait, readFile(filepath.Join(m.dir, mountStatusFile)))
			}
			if dd.exited() {
				t.Fatalf("dd ended before the mount was told to go, with the server stopped: %v\n%s", dd.err, dd.stderr())
			}
			if c.killReader {
				if err := dd.cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
			}

			c.goAway(t, m)
			if !m.waitExit(unmountBound) {
				t.Fatalf("nowhere mount still runs %s after being told to go\nstderr: %s", unmountBound, m.stderr())
			}
			if !dd.waitExit(unmountBound) {
				t.Fatalf("the reader still runs %s after the mount process exited", unmountBound)
			}
			switch {
			case c.killReader:
				if ws, ok := dd.state(); !ok || !ws.Signaled() {
					t.Errorf("the killed reader ended with %v, want killed by its signal", dd.err)
				}
			case dd.err == nil:
				t.Errorf("dd of a region no mirror could serve succeeded; want EIO")
			case !strings.Contains(dd.stderr(), "Input/output error"):
				t.Errorf("dd failed, but not with EIO: %v: %s", dd.err, dd.stderr())
			}
			if isMounted(t, m.dir) {
				t.Errorf("%s is still a mount after the mount process exited", m.dir)
			}
			cut := regexp.MustCompile(`(?m)^nowhere: unmounted \S+ with 1 read still waiting for a mirror \(it got EIO\)$`)
			if !cut.MatchString(m.stderr()) {
				t.Errorf("the mount's stderr has no line saying that 1 read got EIO at unmount:\n%s", m.stderr())
			}
			if m.err == nil {
				t.Errorf("nowhere mount exited 0 after cutting a read off; want a non-zero status")
			}
			for _, bad := range []string{"panic", "goroutine "} {
				if strings.Contains(m.stderr(), bad) {
					t.Errorf("the mount's stderr looks like a crash (%q):\n%s", bad, m.stderr())
				}
			}
			t.Logf("nowhere mount: %v; stderr:\n%s", m.err, m.stderr())
		})
	}
}

// TestSignalDetachesABusyMount: SIGTERM to a mount held busy by a loop-mounted filesystem
// (nothing waiting for a mirror) still ends the process within unmountBound: it detaches
// the mount lazily and says so in one line, and exits. A second SIGTERM while it waits
// for the loop mount to let go exits at once, saying so, with nothing left mounted.
func TestSignalDetachesABusyMount(t *testing.T) {
	f := getFixture(t)
	kernelHas(t, "squashfs")
	srv := startNowhereServe(t, f.store)
	for _, second := range []bool{false, true} {
		name := "one SIGTERM"
		if second {
			name = "a second SIGTERM"
		}
		t.Run(name, func(t *testing.T) {
			m := startForegroundMount(t, srv.url+"/images/squashfs", "squashfs")
			loopMount(t, m.file, "squashfs")
			m.signal(t, syscall.SIGTERM)
			if second {
				time.Sleep(time.Second) // into the unmount's wait (a pause, not an assertion)
				m.signal(t, syscall.SIGTERM)
			}
			if !m.waitExit(unmountBound) {
				t.Fatalf("nowhere mount, busy under a loop mount, still runs %s after SIGTERM\nstderr: %s", unmountBound, m.stderr())
			}
			want := regexp.MustCompile(`(?m)^nowhere: \S+ was busy \(a loop device or an open file\): detached it lazily\b.*$`)
			if second {
				want = regexp.MustCompile(`(?m)^nowhere: terminated again: exiting without waiting for \S+ to unmount \(detached it\)$`)
			}
			if !want.MatchString(m.stderr()) {
				t.Errorf("the mount's stderr has no line matching %s:\n%s", want, m.stderr())
			}
			if isMounted(t, m.dir) {
				t.Errorf("%s is still a mount after the process exited", m.dir)
			}
			t.Logf("nowhere mount: %v; stderr:\n%s", m.err, m.stderr())
		})
	}
}

// mountStatusFile is the live report a mount serves beside the image (nowhere status).
const mountStatusFile = ".status"

// foregroundMount is a `nowhere mount` running in the foreground of a test: the test's
// cleanup unmounts it and ends the process, whatever state it is in.
type foregroundMount struct {
	*reader
	dir, file string
}

// startForegroundMount runs `nowhere mount SOURCE MNT --key publicKey` with extra flags on
// a fresh mountpoint and waits until the image file is there.
func startForegroundMount(t *testing.T, source, name string, flags ...string) *foregroundMount {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"mount", source, dir, "--key", publicKey}, flags...)
	m := &foregroundMount{dir: dir, file: filepath.Join(dir, name+".img")}
	m.reader = startReader(t, nowhereBin, args...)
	t.Cleanup(func() { unmountFUSE(t, dir, m.cmd.Process.Pid) })
	up := waitFor(daemonWait, func() bool {
		_, err := os.Stat(m.file)
		return err == nil && isMounted(t, dir) || m.exited()
	})
	if !up || m.exited() {
		t.Fatalf("nowhere %s did not come up: %v\nstderr: %s", strings.Join(args, " "), m.err, m.stderr())
	}
	return m
}

// readsWaiting returns the "N waiting" of the mount's status report (0 if unreadable).
func (m *foregroundMount) readsWaiting() int {
	b, err := os.ReadFile(filepath.Join(m.dir, mountStatusFile))
	if err != nil {
		return 0
	}
	mm := regexp.MustCompile(`(\d+) waiting`).FindSubmatch(b)
	if mm == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(mm[1]))
	return n
}

func (m *foregroundMount) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := m.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%v to nowhere mount: %v", sig, err)
	}
}

// reader is a process a test started and watches end: a mount or a dd. The test's cleanup
// kills it if it still runs, and waits for it (bounded: a process stuck in the kernel
// cannot be waited for forever).
type reader struct {
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	errb bytes.Buffer
	err  error // from Wait, once done
}

func startReader(t *testing.T, name string, args ...string) *reader {
	t.Helper()
	r := &reader{done: make(chan struct{})}
	r.cmd = exec.Command(name, args...)
	r.cmd.Stderr = lockedWriter{&r.mu, &r.errb}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.err = r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		if !r.exited() {
			_ = r.cmd.Process.Signal(syscall.SIGKILL)
		}
		// Briefly: a reader stuck in a FUSE read ends only once the mount's cleanup,
		// which runs after this one, has ended the mount process.
		if !r.waitExit(5 * time.Second) {
			t.Logf("cleanup: %s still running 5 s after SIGKILL", name)
		}
	})
	return r
}

func (r *reader) stderr() string { r.mu.Lock(); defer r.mu.Unlock(); return r.errb.String() }

func (r *reader) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// waitExit waits up to limit for the process to end and reports whether it did.
func (r *reader) waitExit(limit time.Duration) bool {
	select {
	case <-r.done:
		return true
	case <-time.After(limit):
		return false
	}
}

// state returns how the process ended, once it has.
func (r *reader) state() (syscall.WaitStatus, bool) {
	if !r.exited() || r.cmd.ProcessState == nil {
		return 0, false
	}
	ws, ok := r.cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ws, ok
}
