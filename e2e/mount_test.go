package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestForegroundMountUnmountsOnSignal runs `nowhere mount` in the foreground, reads from
// the mounted file, and sends SIGINT (then, in a second run, SIGTERM): the process
// unmounts, leaves /proc/self/mountinfo without the mountpoint and exits 0.
func TestForegroundMountUnmountsOnSignal(t *testing.T) {
	f := getFixture(t)
	srv := startNowhereServe(t, f.store)
	want := readImageRange(t, f.images["erofs"], 0, 64<<10)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			tmp := t.TempDir()
			mnt := filepath.Join(tmp, "mnt")
			if err := os.Mkdir(mnt, 0o755); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(nowhereBin, "mount", srv.url+"/images/erofs", mnt, "--key", publicKey)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			var exitErr error
			go func() { exitErr = cmd.Wait(); close(done) }()
			t.Cleanup(func() {
				unmountFUSE(t, mnt, cmd.Process.Pid)
				select {
				case <-done:
				case <-time.After(10 * time.Second):
				}
			})
			file := filepath.Join(mnt, "erofs.img")
			up := waitFor(30*time.Second, func() bool {
				_, err := os.Stat(file)
				return err == nil && isMounted(t, mnt) || !alive(cmd.Process.Pid)
			})
			if !up || !isMounted(t, mnt) {
				t.Fatalf("the foreground mount did not come up\nstdout: %s\nstderr: %s", stdout.String(), stderr.String())
			}
			if got := readImageRange(t, file, 0, 64<<10); !bytes.Equal(got, want) {
				t.Fatal("the mounted file does not start like the image")
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Fatalf("still running 30 s after %v", sig)
			}
			if exitErr != nil {
				t.Errorf("exit after %v: %v, want status 0\nstderr: %s", sig, exitErr, stderr.String())
			}
			if isMounted(t, mnt) {
				t.Errorf("%s still in /proc/self/mountinfo after %v", mnt, sig)
			}
		})
	}
}

// daemonWait bounds the waits on a mount's background process (a log line, its exit).
const daemonWait = 60 * time.Second

// TestDaemonMountAndUmount checks --daemon (returns only once the file is readable),
// `nowhere umount` refusing a mount held busy by a loop mount with a clear "busy" line
// (and the mount surviving it), then unmounting it cleanly. (A SIGTERM does not leave a
// busy mount alone: TestSignalDetachesABusyMount.)
func TestDaemonMountAndUmount(t *testing.T) {
	f := getFixture(t)
	kernelHas(t, "squashfs")
	srv := startNowhereServe(t, f.store)
	m := mountDaemon(t, srv.url+"/images/squashfs", "squashfs")
	// No waiting: --daemon has returned, so the file must be there and readable now.
	if !isMounted(t, m.dir) {
		t.Fatalf("nowhere mount --daemon returned before %s was mounted", m.dir)
	}
	if got := readImageRange(t, m.file, 0, 1<<20); !bytes.Equal(got, readImageRange(t, f.images["squashfs"], 0, 1<<20)) {
		t.Fatal("the mounted file does not start like the image")
	}
	if !alive(m.pid) {
		t.Fatalf("the background process %d is not running", m.pid)
	}

	root := loopMount(t, m.file, "squashfs")
	r := runNowhere(t, "umount", m.dir)
	assertOneLineError(t, "umount of a busy mount", r, m.dir, "busy")
	if !isMounted(t, m.dir) {
		t.Fatal("a refused umount unmounted anyway")
	}
	const p = "big/random-odd"
	if sum, err := fileSHA256(filepath.Join(root.dir, p)); err != nil || sum != f.srcNodes[p].SHA256 {
		t.Errorf("reading %s through the mount umount refused: %v (sha256 %s)", p, err, sum)
	}
	root.unmount(t)

	r = mustNowhere(t, "umount", m.dir)
	if r.stderr != "" {
		t.Errorf("umount printed to stderr: %q", r.stderr)
	}
	if isMounted(t, m.dir) {
		t.Errorf("%s still mounted after nowhere umount", m.dir)
	}
	if !waitFor(daemonWait, func() bool { return !alive(m.pid) }) {
		t.Errorf("the background process %d still runs %s after its mount went away", m.pid, daemonWait)
	}
	r = runNowhere(t, "umount", m.dir)
	assertOneLineError(t, "umount of something not mounted", r, m.dir, "not a mountpoint")
}

// TestMountRefusesBadMountpoints: a busy mountpoint, a missing one and a file each get one
// clear line and a non-zero exit, in the foreground and with --daemon.
func TestMountRefusesBadMountpoints(t *testing.T) {
	f := getFixture(t)
	srv := startNowhereServe(t, f.store)
	src := srv.url + "/images/erofs"
	busy := mountDaemon(t, src, "erofs")
	tmp := t.TempDir()
	file := filepath.Join(tmp, "a-file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(tmp, "missing")
	for _, c := range []struct {
		name, mnt, want string
	}{
		{"busy", busy.dir, "busy"},
		{"missing", missing, "does not exist"},
		{"file", file, "not a directory"},
	} {
		for _, daemon := range []bool{false, true} {
			args := []string{"mount", src, c.mnt, "--key", publicKey}
			if daemon {
				args = append(args, "--daemon")
			}
			r := runNowhere(t, args...)
			assertOneLineError(t, strings.Join(args[5:], " ")+" mountpoint "+c.name, r, c.mnt, c.want)
		}
	}
	if _, err := os.Stat(missing); err == nil {
		t.Errorf("mount created the missing mountpoint %s", missing)
	}
	// A bad option the background process finds (not the parent): its own error, not
	// "exited before it was ready".
	mnt := t.TempDir()
	for _, daemon := range []bool{false, true} {
		args := []string{"mount", src, mnt, "--key", publicKey, "--readahead", "12Q"}
		if daemon {
			args = append(args, "--daemon")
		}
		r := runNowhere(t, args...)
		assertOneLineError(t, strings.Join(args[5:], " "), r, "--readahead", "12Q")
		if strings.Contains(r.stderr, "before it was ready") {
			t.Errorf("%v: the parent hid the child's error: %s", args, r.stderr)
		}
	}
	// The busy mount is untouched.
	if got := readImageRange(t, busy.file, 0, 4096); !bytes.Equal(got, readImageRange(t, f.images["erofs"], 0, 4096)) {
		t.Error("the existing mount broke")
	}
}

// TestMountedFileTimes: the image file shows the time its index was made (not 1970), and
// the mount's directory and live files the time it was mounted.
func TestMountedFileTimes(t *testing.T) {
	f := getFixture(t)
	srv := startNowhereServe(t, f.store)
	before := time.Now().Add(-time.Second)
	m := mountDaemon(t, srv.url+"/images/erofs", "erofs")
	after := time.Now().Add(time.Second)
	created := loadIndex(t, f.store, "erofs", 1).Created
	if created.IsZero() {
		t.Fatal("the fixture's index has no creation time")
	}
	st, err := os.Stat(m.file)
	if err != nil {
		t.Fatal(err)
	}
	if !st.ModTime().Equal(created) {
		t.Errorf("%s: mtime %s, want the index's creation time %s", m.file, st.ModTime(), created)
	}
	for _, p := range []string{m.dir, filepath.Join(m.dir, ".status")} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if mt := st.ModTime(); mt.Before(before) || mt.After(after) {
			t.Errorf("%s: mtime %s, want the mount's time (between %s and %s)", p, mt, before, after)
		}
	}
}
