package rootd

import (
	"bytes"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nowhere-boot/nowhere/internal/boot/vm"
)

// TestDaemonServesTheImageAsARootDaemon starts the real binary as the root daemon on this
// machine (no VM): it must serve the image byte for byte from a loopback server, carry
// the name and OOM exemption a root daemon needs, and shrug off SIGTERM.
func TestDaemonServesTheImageAsARootDaemon(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and mounts FUSE")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: FUSE without fusermount (make test runs as root)")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "nowhere")
	build := exec.Command("go", "build", "-o", bin, "../../../cmd/nowhere")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	img := make([]byte, 3<<20+12345)
	rand.Read(img)
	os.WriteFile(filepath.Join(dir, "disk.img"), img, 0o644)
	storeDir := filepath.Join(dir, "store")
	if out, err := exec.Command(bin, "pack", filepath.Join(dir, "disk.img"), "--store", storeDir, "--name", "disk", "--progress", "never").CombinedOutput(); err != nil {
		t.Fatalf("pack: %v\n%s", err, out)
	}
	srv, err := vm.Serve(storeDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	mnt := filepath.Join(dir, "mnt")
	logFile, _ := os.Create(filepath.Join(dir, "daemon.log"))
	defer logFile.Close()
	p, err := Start(bin, Spec{
		Image: "http://" + srv.Addr + "/images/disk", Mirrors: []string{"http://127.0.0.1:1"},
		Mountpoint: mnt, MemCache: 16 << 20, ReadAhead: 1 << 20,
	}, logFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		unix.Unmount(mnt, unix.MNT_DETACH)
		syscall.Kill(p.Pid, syscall.SIGKILL)
	})
	if p.Ready.Name != "disk" || p.Ready.Version != 1 || p.Ready.Size != int64(len(img)) || p.Ready.File != filepath.Join(mnt, "disk.img") {
		t.Errorf("ready = %+v", p.Ready)
	}
	got, err := os.ReadFile(p.Ready.File)
	if err != nil || !bytes.Equal(got, img) {
		t.Fatalf("read %d bytes (%v), want the image's %d", len(got), err, len(img))
	}
	proc := func(f string) string {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(p.Pid) + "/" + f)
		return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
	}
	if c := proc("comm"); c != Comm {
		t.Errorf("comm = %q, want %q", c, Comm)
	}
	if a := proc("cmdline"); a != Argv0 {
		t.Errorf("argv = %q, want %q", a, Argv0)
	}
	// Lowering oom_score_adj needs CAP_SYS_RESOURCE, which some sandboxes withhold (the
	// boot test checks it inside the VM).
	if os.WriteFile("/proc/self/oom_score_adj", []byte("-1"), 0) == nil {
		os.WriteFile("/proc/self/oom_score_adj", []byte("0"), 0)
		if o := proc("oom_score_adj"); o != "-1000" {
			t.Errorf("oom_score_adj = %q", o)
		}
	} else {
		t.Log("this process may not lower oom_score_adj (no CAP_SYS_RESOURCE): not checked here")
	}

	syscall.Kill(p.Pid, syscall.SIGTERM)
	syscall.Kill(p.Pid, syscall.SIGUSR1)
	time.Sleep(300 * time.Millisecond)
	if err := syscall.Kill(p.Pid, 0); err != nil {
		t.Fatalf("the daemon died of SIGTERM: %v", err)
	}
	if _, err := os.ReadFile(p.Ready.File); err != nil {
		t.Errorf("not serving after SIGTERM: %v", err)
	}
	log, _ := os.ReadFile(logFile.Name())
	for _, want := range []string{"got terminated: ignored", "stats reads=", "serving disk version 1"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("daemon log lacks %q:\n%s", want, log)
		}
	}
	// Unmounting ends it.
	if err := unix.Unmount(mnt, 0); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(p.Pid, 0) == nil && !zombie(p.Pid) {
		if time.Now().After(deadline) {
			t.Fatal("the daemon is still running after its mount went away")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestStartReportsWhyTheDaemonFailed: a spec the daemon cannot use comes back as an
// error, not a hang.
func TestStartReportsWhyTheDaemonFailed(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "nowhere")
	build := exec.Command("go", "build", "-o", bin, "../../../cmd/nowhere")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	devnull, _ := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	defer devnull.Close()
	_, err := Start(bin, Spec{Image: "http://127.0.0.1:1/no-images-here", Mountpoint: dir}, devnull)
	if err == nil || !strings.Contains(err.Error(), "no /images/") {
		t.Errorf("err = %v, want the daemon's reason", err)
	}
}

func zombie(pid int) bool {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] == "Z"
}
