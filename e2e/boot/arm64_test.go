package boot

import (
	"context"
	"crypto/rand"
	"debug/elf"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/boot/vm"
	"github.com/nowhere-boot/nowhere/internal/image"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// arm64Store is what every arm64 boot shares: Debian's arm64 kernel tree, an arm64
// busybox image packed for arm64, an arm64 initramfs with the publisher's key baked in,
// and the media nowhere bootdisk --arch arm64 writes (each built on first use).
var arm64Store struct {
	once   sync.Once
	tmp    string
	kdir   string // scripts/fetch-kernel.sh arm64: vmlinuz, modules, x/ (the unpacked packages)
	store  string // the store holding arm64Image
	initrd string // arm64 initramfs, --key env.public
	disk   func() (string, error)
	uki    func() (string, error)
	err    error
}

// arm64Image is the name of the arm64 busybox image in arm64Store.store.
const arm64Image = "bb-arm64"

// arm64Init is the arm64 image's /sbin/init: it says which architecture the guest runs
// (the point of these boots: an arm64 kernel and an arm64 userland, not the host's) and
// then runs the shared guestInit in the same shell. Sourced, not exec'd, so guestInit's
// $0 stays /sbin/init and its $$ stays 1: checkGuest's expectations hold unchanged.
const arm64Init = `#!/bin/sh
export PATH=/bin
echo "E2E-ARCH: $(uname -m)"
. /bin/e2e-init-common
`

func arm64Setup(t *testing.T) {
	t.Helper()
	needEnv(t)
	// Missing parts fail: scripts/install-deps.sh installs qemu-system-arm and
	// qemu-efi-aarch64, and make test runs it first.
	if _, err := exec.LookPath("qemu-system-aarch64"); err != nil {
		t.Fatal("qemu-system-aarch64 is not installed (scripts/install-deps.sh installs it)")
	}
	if _, err := os.Stat(filepath.Join(vm.AAVMFDir, "AAVMF_CODE.fd")); err != nil {
		t.Fatalf("AAVMF (arm64 UEFI) is not installed: %v (scripts/install-deps.sh installs qemu-efi-aarch64)", err)
	}
	arm64Store.once.Do(func() { arm64Store.err = arm64Build() })
	if arm64Store.err != nil {
		t.Fatalf("arm64 setup: %v", arm64Store.err)
	}
}

// arm64Build builds the shared arm64 parts under the setup directory (not a test's: the
// subtests share them, and TestMain removes it).
func arm64Build() error {
	a := &arm64Store
	a.tmp = filepath.Join(setupDir, "arm64")
	if err := os.MkdirAll(a.tmp, 0o755); err != nil {
		return err
	}
	out, err := exec.Command(filepath.Join(env.top, "scripts/fetch-kernel.sh"), "arm64").Output()
	if err != nil {
		return fmt.Errorf("scripts/fetch-kernel.sh arm64: %v", err)
	}
	a.kdir = strings.TrimSpace(string(out))
	// nowhere initramfs (and bootdisk, which makes one) takes /init for an arm64 kernel's
	// modules from nowhere-arm64 beside the running binary.
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(filepath.Dir(env.bin), "nowhere-arm64"), "./cmd/nowhere")
	build.Dir = env.top
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOARCH=arm64")
	if b, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("GOARCH=arm64 go build: %v\n%s", err, b)
	}
	root, err := arm64BusyboxRoot(a.tmp, filepath.Join(a.kdir, "x/bin/busybox"))
	if err != nil {
		return err
	}
	img := filepath.Join(a.tmp, "root.squashfs")
	if err := cmdRun("mksquashfs", root, img, "-quiet", "-noappend", "-comp", "zstd", "-all-root"); err != nil {
		return err
	}
	a.store = filepath.Join(a.tmp, "store")
	if err := cmdRun(env.bin, "pack", img, "--store", a.store, "--name", arm64Image, "--arch", "arm64",
		"--progress", "never", "--sign-key", env.secret); err != nil {
		return err
	}
	a.initrd = filepath.Join(a.tmp, "initrd.img")
	if err := cmdRun(env.bin, "initramfs", "-o", a.initrd, "--modules", filepath.Join(a.kdir, "modules"), "--key", env.public); err != nil {
		return err
	}
	pass := filepath.Join(a.tmp, "snakeoil.pass")
	if err := os.WriteFile(pass, []byte("snakeoil\n"), 0o600); err != nil {
		return err
	}
	write := func(name string, extra ...string) func() (string, error) {
		return sync.OnceValues(func() (string, error) {
			out := filepath.Join(a.tmp, name)
			args := append([]string{"bootdisk", "--arch", "arm64", "-o", out, "--image", vm.GuestURL + "/images/" + arm64Image,
				"--key", env.public, "--append", "console=ttyAMA0 panic=-1 loglevel=4", "--timeout", "1s",
				"--kernel", filepath.Join(a.kdir, "vmlinuz"), "--modules", filepath.Join(a.kdir, "modules")}, extra...)
			// Off an arm64 machine bootdisk takes the arm64 loaders (shimaa64, grubaa64, the
			// linuxaa64 stub) from the tree fetch-kernel.sh unpacked beside --kernel: run from
			// elsewhere (not the repository), so that is where they must come from.
			cmd := exec.Command(env.bin, args...)
			cmd.Dir = a.tmp
			if b, err := cmd.CombinedOutput(); err != nil {
				return "", fmt.Errorf("nowhere %s: %v\n%s", strings.Join(args, " "), err, b)
			}
			return out, nil
		})
	}
	a.disk = write("disk.img")
	a.uki = write("uki.img", "--uki", "--sign-key", snakeoilKey, "--sign-cert", snakeoilCert, "--sign-pass-file", pass)
	return nil
}

func cmdRun(name string, args ...string) error {
	if b, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, b)
	}
	return nil
}

// arm64BusyboxRoot is busyboxRoot with Debian's static arm64 busybox: the applet links
// come from the host's busybox --list (the arm64 binary cannot run here; an applet the
// arm64 build lacks is a dangling name nothing calls), guestInit as /bin/e2e-init-common,
// run by arm64Init as /sbin/init.
func arm64BusyboxRoot(dir, bb string) (string, error) {
	f, err := elf.Open(bb)
	if err != nil {
		return "", fmt.Errorf("the arm64 busybox (scripts/fetch-kernel.sh arm64 unpacks it): %w", err)
	}
	defer f.Close()
	if f.Machine != elf.EM_AARCH64 {
		return "", fmt.Errorf("%s is for %v, not EM_AARCH64", bb, f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "", fmt.Errorf("%s is dynamically linked: the image has no arm64 libc", bb)
		}
	}
	host, err := exec.LookPath("busybox")
	if err != nil {
		return "", fmt.Errorf("busybox is not installed (scripts/install-deps.sh test installs busybox-static)")
	}
	list, err := exec.Command(host, "--list").Output()
	if err != nil {
		return "", fmt.Errorf("%s --list: %v", host, err)
	}
	root := filepath.Join(dir, "root")
	for _, d := range []string{"bin", "sbin", "proc", "sys", "dev", "run", "tmp", "etc", "payload"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return "", err
		}
	}
	if err := cmdRun("cp", "-L", bb, filepath.Join(root, "bin/busybox")); err != nil {
		return "", err
	}
	if err := os.Chmod(filepath.Join(root, "bin/busybox"), 0o755); err != nil {
		return "", err
	}
	for _, a := range strings.Fields(string(list)) {
		if a != "busybox" {
			os.Symlink("busybox", filepath.Join(root, "bin", a))
		}
	}
	for p, s := range map[string]string{"sbin/init": arm64Init, "bin/e2e-init-common": guestInit} {
		if err := os.WriteFile(filepath.Join(root, p), []byte(s), 0o755); err != nil {
			return "", err
		}
	}
	// As busyboxRoot's: 12 MiB nothing reads, so an on-demand fetch fetches less than the image.
	payload := make([]byte, 12<<20)
	rand.Read(payload)
	return root, os.WriteFile(filepath.Join(root, "payload/unread.bin"), payload, 0o644)
}

// arm64Serve serves the shared arm64 store on a free loopback port until t ends.
func arm64Serve(t *testing.T) *served {
	t.Helper()
	s, err := image.OpenStore(arm64Store.store)
	if err != nil {
		t.Fatal(err)
	}
	ix, _, err := image.Load(context.Background(), s, image.Location{Store: arm64Store.store, Name: arm64Image}, store.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	if ix.Arch != "arm64" {
		t.Fatalf("the index of %s says architecture %q, want arm64 (nowhere pack --arch arm64)", arm64Image, ix.Arch)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	sv := &served{store: arm64Store.store, name: arm64Image, addr: addr, index: ix}
	sv.start(t)
	if sv.srv == nil {
		t.FailNow()
	}
	return sv
}

// arm64Boot runs one arm64 VM (cfg: the boot path; the rest is filled in here) against
// s until it powers off or 5 minutes pass, and returns it with its power-on-to-marker
// time, logged for the docs.
func arm64Boot(t *testing.T, s *served, path string, cfg vm.Config) (vm.Result, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	log := consoleLog(t)
	defer log.Close()
	cfg.Arch = "arm64"
	// One vCPU, as every boot test: a second TCG vCPU thread on the loaded 2-core host can
	// starve the guest into RCU stalls.
	cfg.CPUs, cfg.Accel = 1, "auto"
	cfg.Relay = []string{env.bin, "vm", "relay", s.addr}
	cfg.Console = log
	cfg.Expect = []*regexp.Regexp{regexp.MustCompile("E2E-MARK-OK")}
	before := s.counts()
	r, err := vm.Run(ctx, cfg)
	marker := r.Matches["E2E-MARK-OK"]
	after := s.counts()
	t.Logf("VM ran %.1f s (accel %s); served %d requests, %d chunk bytes", r.Elapsed.Seconds(), r.Accel,
		after.Requests-before.Requests, after.ChunkBytes-before.ChunkBytes)
	if err != nil || marker == 0 || !r.PoweredOff {
		t.Fatalf("VM: err=%v, marker seen %v, powered off %v; console:\n%s", err, marker > 0, r.PoweredOff, tail(r.Console, 120))
	}
	t.Logf("arm64 %s: power-on to E2E-MARK-OK %.1f s", path, marker.Seconds())
	if got := line(r.Console, "E2E-ARCH:"); got != "aarch64" {
		t.Errorf("the guest says it runs on %q, want aarch64", got)
	}
	return r, marker
}

// TestArm64 boots an arm64 machine (qemu-system-aarch64 -M virt -cpu max, under TCG on an
// x86 host) with Debian's signed arm64 kernel and an arm64 busybox image packed with
// --arch arm64, the root streamed over HTTP, on each way such a machine starts, each to
// the guest's marker and its report that it runs on aarch64:
//   - direct: qemu loads the kernel Image and the arm64 initramfs (/init = nowhere built
//     for arm64) itself, no firmware; the guest's root is checked like TestBootBusybox's
//     (overlay of a squashfs loop device on the FUSE file, fetched on demand);
//   - uefi-usb: the disk nowhere bootdisk --arch arm64 writes as a USB stick (xHCI) on
//     AAVMF without Secure Boot: BOOTAA64.EFI (shim) -> Debian's signed GRUB (its menu) ->
//     the kernel's EFI stub;
//   - secureboot-usb: the same disk on AAVMF with Secure Boot and Microsoft's keys: shim
//     verifies GRUB, GRUB the kernel, which says Secure Boot is enabled;
//   - snakeoil-uki-usb: a disk made with --uki (linuxaa64 stub, signed with Debian's
//     snakeoil test key) on AAVMF with Secure Boot and that key enrolled: the firmware
//     starts the UKI, no shim, no GRUB.
//
// Each logs its power-on-to-marker time.
func TestArm64(t *testing.T) {
	arm64Setup(t)
	s := arm64Serve(t)
	kernel := filepath.Join(arm64Store.kdir, "vmlinuz")
	media := func(t *testing.T, f func() (string, error)) string {
		t.Helper()
		p, err := f()
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	grubLine := "nowhere: booting image " + arm64Image + " from " + vm.GuestURL + "/images/" + arm64Image

	t.Run("direct", func(t *testing.T) {
		r, _ := arm64Boot(t, s, "direct", vm.Config{Kernel: kernel, Initrd: arm64Store.initrd, Memory: 512,
			Append: "panic=-1 loglevel=4 nowhere.image=" + vm.GuestURL + "/images/" + arm64Image})
		// The whole root check: overlay, squashfs on a loop device on the FUSE file, the
		// daemon, the write, the on-demand fetch; /sbin/init (arm64Init) ran as PID 1.
		checkGuest(t, r, s, guest{format: "squashfs", ip: "dhcp"})
		if got := line(r.Console, "nowhere: trusting publisher keys"); got == "" {
			t.Errorf("/init did not say it trusts the baked key:\n%s", tail(r.Console, 60))
		}
	})
	t.Run("uefi-usb", func(t *testing.T) {
		r, _ := arm64Boot(t, s, "uefi-usb", vm.Config{Firmware: vm.OVMF, Memory: 1024, USB: media(t, arm64Store.disk)})
		checkConsole(t, fwResult{console: r.Console}, "GNU GRUB", grubLine, "nowhere: trusting publisher keys", "E2E-MARK-OK")
		// Plain AAVMF enrolls no keys: the stub must not find Secure Boot on (else this path
		// would be the secureboot one under another name).
		if strings.Contains(r.Console, "Secure Boot is enabled") {
			t.Errorf("the kernel says Secure Boot is enabled on AAVMF without Secure Boot")
		}
		arm64Lower(t, r)
	})
	t.Run("secureboot-usb", func(t *testing.T) {
		r, _ := arm64Boot(t, s, "secureboot-usb", vm.Config{Firmware: vm.SecureBoot, Memory: 1024, USB: media(t, arm64Store.disk)})
		checkConsole(t, fwResult{console: r.Console}, "GNU GRUB", grubLine, "EFI stub: UEFI Secure Boot is enabled.", "E2E-MARK-OK")
		arm64Lower(t, r)
	})
	t.Run("snakeoil-uki-usb", func(t *testing.T) {
		r, _ := arm64Boot(t, s, "snakeoil-uki-usb", vm.Config{Firmware: vm.Snakeoil, Memory: 1024, USB: media(t, arm64Store.uki)})
		checkConsole(t, fwResult{console: r.Console}, "EFI stub: UEFI Secure Boot is enabled.",
			"nowhere: image "+vm.GuestURL+"/images/"+arm64Image+",", "E2E-MARK-OK")
		if strings.Contains(r.Console, "GRUB") {
			t.Errorf("GRUB ran: the UKI should have been started by the firmware itself")
		}
		arm64Lower(t, r)
	})
}

// arm64Lower checks that a firmware boot's root is the streamed image: a squashfs on a
// loop device under the overlay (the direct boot checks the rest with checkGuest).
func arm64Lower(t *testing.T, r vm.Result) {
	t.Helper()
	if got := line(r.Console, "E2E-LOWER:"); !strings.Contains(got, " - squashfs /dev/loop") {
		t.Errorf("the overlay's lower layer %q is not a squashfs loop device", got)
	}
}
