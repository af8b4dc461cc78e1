package e2e

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mountinfo returns the mountpoints in /proc/self/mountinfo mapped to their sources.
func mountinfo(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := make(map[string]string)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		src := ""
		for i, f := range fields {
			if f == "-" && i+2 < len(fields) {
				src = unescapeMountinfo(fields[i+2])
			}
		}
		out[unescapeMountinfo(fields[4])] = src
	}
	return out
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of /proc/self/mountinfo.
func unescapeMountinfo(s string) string {
	re := regexp.MustCompile(`\\[0-7]{3}`)
	return re.ReplaceAllStringFunc(s, func(e string) string {
		n, _ := strconv.ParseUint(e[1:], 8, 8)
		return string(rune(n))
	})
}

func isMounted(t *testing.T, dir string) bool {
	t.Helper()
	_, ok := mountinfo(t)[dir]
	return ok
}

// fuseMount is an image mounted with `nowhere mount` by a test.
type fuseMount struct {
	dir  string // mountpoint
	file string // dir/NAME.img
	pid  int    // the background process (--daemon)
	log  string // its --log file
}

var daemonPid = regexp.MustCompile(`in the background as pid (\d+)`)

// mountDaemon runs `nowhere mount SOURCE MNT --daemon --key publicKey` with extra flags on
// a fresh mountpoint and makes the test's cleanup unmount it and end the process.
func mountDaemon(t *testing.T, source, name string, flags ...string) *fuseMount {
	t.Helper()
	tmp := t.TempDir()
	m := &fuseMount{dir: filepath.Join(tmp, "mnt"), log: filepath.Join(tmp, "mount.log")}
	m.file = filepath.Join(m.dir, name+".img")
	if err := os.Mkdir(m.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"mount", source, m.dir, "--daemon", "--log", m.log, "--key", publicKey}, flags...)
	r := runNowhere(t, args...)
	if mm := daemonPid.FindStringSubmatch(r.stdout); mm != nil {
		m.pid, _ = strconv.Atoi(mm[1])
	}
	t.Cleanup(func() { m.unmount(t) })
	if r.code != 0 || m.pid == 0 {
		t.Fatalf("nowhere %s: exit %d\nstdout: %s\nstderr: %s\nlog: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr, readFile(m.log))
	}
	return m
}

// unmount takes the mount down (see unmountFUSE). It may run twice.
func (m *fuseMount) unmount(t *testing.T) { t.Helper(); unmountFUSE(t, m.dir, m.pid) }

// unmountFUSE takes a FUSE mount made by this test down, whatever state it is in, and
// makes sure the process serving it (pid, 0 if unknown) is gone.
func unmountFUSE(t *testing.T, dir string, pid int) {
	t.Helper()
	if isMounted(t, dir) {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Logf("cleanup: umount %s: %v: %s; detaching lazily", dir, err, out)
			_ = exec.Command("umount", "-l", dir).Run()
		}
	}
	if pid > 0 {
		gone := waitFor(10*time.Second, func() bool { return !alive(pid) })
		if !gone {
			t.Logf("cleanup: mount process %d still running after unmount: killing it", pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// loopMnt is a filesystem image loop-mounted read-only by a test.
type loopMnt struct {
	dir, dev, image string
}

// loopMount mounts an image file read-only through a loop device at a fresh directory and
// makes the test's cleanup unmount it and free the loop device.
func loopMount(t *testing.T, image, fstype string) *loopMnt {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "root")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", fstype, "-o", "loop,ro", image, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("mount -o loop,ro %s %s: %v: %s", image, dir, err, out)
	}
	l := &loopMnt{dir: dir, dev: mountinfo(t)[dir], image: image}
	t.Cleanup(func() { l.unmount(t) })
	return l
}

// unmount unmounts the filesystem and detaches its loop device if it still holds the image
// (mount -o loop sets autoclear, so normally it is gone already). It may run twice.
func (l *loopMnt) unmount(t *testing.T) {
	t.Helper()
	if isMounted(t, l.dir) {
		if out, err := exec.Command("umount", l.dir).CombinedOutput(); err != nil {
			t.Logf("cleanup: umount %s: %v: %s; detaching lazily", l.dir, err, out)
			_ = exec.Command("umount", "-l", l.dir).Run()
		}
	}
	detachIfBacking(t, l.dev, l.image)
}

// detachIfBacking detaches loop device dev if it is still attached to file.
func detachIfBacking(t *testing.T, dev, file string) {
	t.Helper()
	if !strings.HasPrefix(dev, "/dev/loop") {
		return
	}
	b, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(dev), "loop", "backing_file"))
	if err != nil || strings.TrimSpace(string(b)) != file {
		return
	}
	if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
		t.Logf("cleanup: losetup -d %s: %v: %s", dev, err, out)
	}
}

// attachLoop attaches file read-only to a free loop device and returns the device.
func attachLoop(t *testing.T, file string) string {
	t.Helper()
	dev := strings.TrimSpace(mustRun(t, "losetup", "--find", "--show", "--read-only", file))
	t.Cleanup(func() { detachIfBacking(t, dev, file) })
	return dev
}

// alive reports whether process pid exists and has not exited. A daemon's parent has
// gone, so once it exits it is a zombie until init reaps it: that counts as exited.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	_, rest, ok := strings.Cut(string(b), ") ")
	return ok && !strings.HasPrefix(rest, "Z") && !strings.HasPrefix(rest, "X")
}
