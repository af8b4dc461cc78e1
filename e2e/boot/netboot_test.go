package boot

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/boot/vm"
	"github.com/nowhere-boot/nowhere/internal/bootmenu"
	"github.com/nowhere-boot/nowhere/internal/image"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// accessLog collects the paths a server answered, in order.
type accessLog struct {
	mu    sync.Mutex
	lines []string // "METHOD PATH STATUS BYTES"
}

func (l *accessLog) logf(format string, args ...any) {
	f := strings.Fields(fmt.Sprintf(format, args...)) // client method path status bytes range time
	if len(f) >= 5 {
		l.mu.Lock()
		l.lines = append(l.lines, strings.Join(f[1:5], " "))
		l.mu.Unlock()
	}
}

// since returns the lines logged from position n on, and the position after them.
func (l *accessLog) since(n int) ([]string, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines[n:]...), len(l.lines)
}

// serveMenu serves the store in dir on a free loopback port, with the boot menu, and
// logs every request.
func serveMenu(t *testing.T, dir string, o bootmenu.Options) (*vm.Server, *accessLog) {
	t.Helper()
	if err := bootmenu.Check(dir, o); err != nil {
		t.Fatal(err)
	}
	log := &accessLog{}
	srv, err := vm.ServeWith(dir, "127.0.0.1:0", log.logf, func(h http.Handler) http.Handler {
		return bootmenu.Handler(dir, h, o)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv, log
}

// TestNetBootMenu boots a VM like a diskless machine: no disk, no -kernel, no -initrd.
// The NIC's iPXE ROM (qemu's, from ipxe-qemu) gets http://10.0.2.100/boot.ipxe from
// qemu's DHCP server, fetches the menu nowhere serves, which lists the store's two
// images; the default entry (bb, not the first by name) boots after the timeout: the
// kernel and the initramfs (with the publisher's key baked in) over HTTP, then the image
// streamed over HTTP as the root.
func TestNetBootMenu(t *testing.T) {
	needEnv(t)
	if _, err := vm.FindROMDir(); err != nil {
		t.Fatalf("%v", err) // scripts/install-deps.sh installs ipxe-qemu
	}
	root := busyboxRoot(t)
	img := makeFS(t, root, "squashfs")
	dir := filepath.Join(t.TempDir(), "store")
	for _, name := range []string{"alpha", "bb"} {
		run(t, env.bin, "pack", img, "--store", dir, "--name", name, "--progress", "never", "--sign-key", env.secret)
	}
	initrd := filepath.Join(t.TempDir(), "initrd.img")
	run(t, env.bin, "initramfs", "-o", initrd, "--modules", env.modules, "--key", env.public)
	kernel := filepath.Join(filepath.Dir(env.kernel), "vmlinuz") // iPXE loads bzImages, not PVH ELF
	srv, log := serveMenu(t, dir, bootmenu.Options{Kernel: kernel, Initrd: initrd, Default: "bb",
		Timeout: time.Second, Append: "console=ttyS0 panic=-1 loglevel=4"})

	s, err := image.OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	ix, _, err := image.Load(context.Background(), s, image.Location{Store: dir, Name: "bb"}, store.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	sv := &served{store: dir, name: "bb", addr: srv.Addr, srv: srv, index: ix}
	r := netboot(t, sv, 384, 8*time.Minute)
	checkGuest(t, r, sv, guest{format: "squashfs", ip: "dhcp"})
	c := r.Console
	for _, want := range []string{
		"Filename: http://10.0.2.100/boot.ipxe", // DHCP named the menu
		"alpha (version 1", "bb (version 1",     // the menu listed both images
		"nowhere: booting image bb from http://10.0.2.100", // the default entry ran
		"nowhere: image http://10.0.2.100/images/bb,",      // /init got its command line
		"nowhere: root daemon pid", "serves bb version 1",  // and booted bb
	} {
		if !strings.Contains(c, want) {
			t.Errorf("console lacks %q:\n%s", want, tail(c, 80))
		}
	}
	lines, _ := log.since(0)
	got := map[string]bool{}
	for _, l := range lines {
		got[l[:strings.LastIndex(l, " ")]] = true // without the byte count
	}
	for _, want := range []string{"GET /boot.ipxe 200", "GET /boot/vmlinuz 200", "GET /boot/initrd.img 200", "GET /images/bb/latest 200"} {
		if !got[want] {
			t.Errorf("the server never answered %q; it answered:\n%s", want, strings.Join(lines[:min(len(lines), 40)], "\n"))
		}
	}
	if got["GET /images/alpha/latest 200"] {
		t.Errorf("the guest asked for alpha, not the default entry")
	}
}

// netboot boots a diskless VM from the menu s serves, until it powers off.
func netboot(t *testing.T, s *served, mem int, timeout time.Duration) vm.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	logFile := consoleLog(t)
	defer logFile.Close()
	start := time.Now()
	r, err := vm.Run(ctx, vm.Config{
		NetBoot: vm.GuestURL + bootmenu.ScriptPath, Memory: mem, CPUs: 2, Accel: "auto",
		Relay:   []string{env.bin, "vm", "relay", s.addr},
		Console: logFile,
		Expect:  []*regexp.Regexp{regexp.MustCompile("E2E-MARK-OK")},
	})
	t.Logf("VM ran %.1f s (accel %s); served %+v", time.Since(start).Seconds(), r.Accel, s.counts())
	if err != nil || !r.PoweredOff {
		t.Fatalf("VM: err=%v powered-off=%v; console:\n%s", err, r.PoweredOff, tail(r.Console, 120))
	}
	return r
}

// consoleLog is the file a test's console goes to (in NOWHERE_E2E_LOGS, if set, to be
// read afterwards).
func consoleLog(t *testing.T) *os.File {
	t.Helper()
	dir := os.Getenv("NOWHERE_E2E_LOGS")
	if dir == "" {
		dir = t.TempDir()
	}
	os.MkdirAll(dir, 0o755)
	f, err := os.Create(filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+".log"))
	if err != nil {
		t.Fatal(err)
	}
	return f
}
