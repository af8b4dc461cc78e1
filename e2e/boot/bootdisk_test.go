package boot

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/boot/vm"
)

// bootdiskMedia are the media nowhere bootdisk wrote for the served busybox image: built
// once, booted by each firmware.
type bootdiskMedia struct {
	s    *served
	disk func() (string, error) // the raw GPT disk image (USB stick)
	iso  func() (string, error) // the hybrid ISO
	uki  func() (string, error) // a disk image with a signed UKI as BOOTX64.EFI
}

// TestBootdisk boots the media `nowhere bootdisk` writes (kernel and initramfs on the
// medium, the root streamed over HTTP) on three firmwares, each to the guest's marker:
//   - d: the disk image as a USB stick on UEFI with Secure Boot and Microsoft's keys
//     (OVMF secboot, q35 with SMM): shim -> Debian's signed GRUB (its menu) -> the signed
//     kernel, which says Secure Boot is enabled;
//   - g: the same disk image as a disk on legacy BIOS (SeaBIOS): gptmbr.bin -> SYSLINUX
//     (its menu);
//   - h: the ISO as a CD on UEFI with Secure Boot: El Torito -> shim -> Debian's CD GRUB;
//   - i: the same ISO as a CD on legacy BIOS: El Torito -> ISOLINUX (its menu);
//   - u: a disk image made with --uki (signed with Debian's snakeoil test key) as a USB
//     stick on UEFI with Secure Boot and that key enrolled: the firmware starts the UKI,
//     no shim, no GRUB.
//
// Each logs its power-on-to-marker time.
func TestBootdisk(t *testing.T) {
	needEnv(t)
	root := busyboxRoot(t)
	s := pack(t, makeFS(t, root, "squashfs"), "bb")
	s.start(t)
	dir := t.TempDir()
	write := func(name string, extra ...string) func() (string, error) {
		return sync.OnceValues(func() (string, error) {
			out := filepath.Join(dir, name)
			args := append([]string{"bootdisk", "-o", out, "--image", "http://10.0.2.100/images/bb", "--key", env.public,
				"--append", "console=ttyS0 panic=-1 loglevel=4", "--timeout", "1s",
				"--kernel", filepath.Join(filepath.Dir(env.kernel), "vmlinuz"), "--modules", env.modules}, extra...)
			start := time.Now()
			b, err := exec.Command(env.bin, args...).CombinedOutput()
			if err != nil {
				return "", fmt.Errorf("nowhere %s: %v\n%s", strings.Join(args, " "), err, b)
			}
			t.Logf("nowhere bootdisk %s: %.1f s\n%s", name, time.Since(start).Seconds(), b)
			return out, nil
		})
	}
	pass := filepath.Join(dir, "snakeoil.pass")
	if err := os.WriteFile(pass, []byte("snakeoil\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := bootdiskMedia{s: s, disk: write("disk.img"), iso: write("boot.iso", "--iso"),
		uki: write("uki.img", "--uki", "--sign-key", snakeoilKey, "--sign-cert", snakeoilCert, "--sign-pass-file", pass)}

	t.Run("d-uefi-secureboot-usb", func(t *testing.T) {
		disk := media(t, m.disk)
		r := mediaBoot(t, m.s, vm.SecureBoot, "usb", disk)
		checkConsole(t, r, "Welcome to GRUB!", "GNU GRUB", "nowhere: booting image bb from http://10.0.2.100/images/bb",
			"EFI stub: UEFI Secure Boot is enabled.", "nowhere: trusting publisher keys", "E2E-MARK-OK")
	})
	t.Run("g-bios-disk", func(t *testing.T) {
		disk := media(t, m.disk)
		r := mediaBoot(t, m.s, vm.SeaBIOS, "disk", disk)
		checkConsole(t, r, "SYSLINUX 6.04", "nowhere boot disk", "nowhere: trusting publisher keys", "E2E-MARK-OK")
	})
	t.Run("h-uefi-secureboot-cd", func(t *testing.T) {
		iso := media(t, m.iso)
		r := mediaBoot(t, m.s, vm.SecureBoot, "cd", iso)
		checkConsole(t, r, "GNU GRUB", "nowhere: booting image bb from http://10.0.2.100/images/bb",
			"EFI stub: UEFI Secure Boot is enabled.", "E2E-MARK-OK")
	})
	t.Run("i-bios-cd", func(t *testing.T) {
		iso := media(t, m.iso)
		r := mediaBoot(t, m.s, vm.SeaBIOS, "cd", iso)
		checkConsole(t, r, "ISOLINUX 6.04", "nowhere boot disk", "E2E-MARK-OK")
	})
	t.Run("u-uefi-snakeoil-uki-usb", func(t *testing.T) {
		disk := media(t, m.uki)
		r := mediaBoot(t, m.s, vm.Snakeoil, "usb", disk)
		checkConsole(t, r, "EFI stub: UEFI Secure Boot is enabled.", "nowhere: image http://10.0.2.100/images/bb,", "E2E-MARK-OK")
		if strings.Contains(r.console, "GRUB") {
			t.Errorf("GRUB ran: the UKI should have been started by the firmware itself")
		}
	})
}

func media(t *testing.T, f func() (string, error)) string {
	t.Helper()
	p, err := f()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func checkConsole(t *testing.T, r fwResult, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(r.console, w) {
			t.Errorf("console lacks %q:\n%s", w, tail(r.console, 80))
		}
	}
}

type fwResult struct {
	console string
	marker  time.Duration // power-on to E2E-MARK-OK
}

// mediaBoot boots the medium file (as a USB stick, a disk or a CD) on fw, with the
// guest reaching s as http://10.0.2.100, until it powers off or 6 minutes pass.
func mediaBoot(t *testing.T, s *served, fw vm.Firmware, as, file string) fwResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	cfg := vm.Config{Firmware: fw, Memory: 1024, CPUs: 1, Accel: "auto",
		Relay:  []string{env.bin, "vm", "relay", s.addr},
		Expect: []*regexp.Regexp{regexp.MustCompile("E2E-MARK-OK")}}
	switch as {
	case "usb":
		cfg.USB = file
	case "disk":
		cfg.Disks = []string{file}
	case "cd":
		cfg.CDROM = file
	}
	before := s.counts()
	log := consoleLog(t)
	defer log.Close()
	cfg.Console = log
	r, err := vm.Run(ctx, cfg)
	res := fwResult{console: r.Console, marker: r.Matches["E2E-MARK-OK"]}
	if res.marker > 0 {
		after := s.counts()
		t.Logf("%s from %s: power-on to E2E-MARK-OK %.1f s (VM ran %.1f s, accel %s); served %d requests, %d chunk bytes", fw, as,
			res.marker.Seconds(), r.Elapsed.Seconds(), r.Accel, after.Requests-before.Requests, after.ChunkBytes-before.ChunkBytes)
	}
	if err != nil || res.marker == 0 || !r.PoweredOff {
		t.Fatalf("VM: err=%v, marker seen %v, powered off %v; console:\n%s", err, res.marker > 0, r.PoweredOff, tail(r.Console, 120))
	}
	return res
}
