package boot

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// bootdiskMedia are the media nowhere bootdisk wrote for the served busybox image: built
// once, booted by each firmware.
type bootdiskMedia struct {
	s    *served
	disk func() (string, error) // the raw GPT disk image (USB stick)
	iso  func() (string, error) // the hybrid ISO
}

// TestBootdisk boots the media `nowhere bootdisk` writes (kernel and initramfs on the
// medium, the root streamed over HTTP) on three firmwares, each to the guest's marker:
//   - d: the disk image as a USB stick on UEFI with Secure Boot and Microsoft's keys
//     (OVMF secboot, q35 with SMM): shim -> Debian's signed GRUB (its menu) -> the signed
//     kernel, which says Secure Boot is enabled;
//   - g: the same disk image as a disk on legacy BIOS (SeaBIOS): gptmbr.bin -> SYSLINUX
//     (its menu);
//   - h: the ISO as a CD on UEFI with Secure Boot: El Torito -> shim -> Debian's CD GRUB;
//   - i: the same ISO as a CD on legacy BIOS: El Torito -> ISOLINUX (its menu).
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
	m := bootdiskMedia{s: s, disk: write("disk.img"), iso: write("boot.iso", "--iso")}

	t.Run("d-uefi-secureboot-usb", func(t *testing.T) {
		disk := media(t, m.disk)
		r := firmwareBoot(t, m.s, fwSecureBoot, "usb", disk)
		checkConsole(t, r, "Welcome to GRUB!", "GNU GRUB", "nowhere: booting image bb from http://10.0.2.100/images/bb",
			"EFI stub: UEFI Secure Boot is enabled.", "nowhere: trusting publisher keys", "E2E-MARK-OK")
	})
	t.Run("g-bios-disk", func(t *testing.T) {
		disk := media(t, m.disk)
		r := firmwareBoot(t, m.s, fwSeaBIOS, "disk", disk)
		checkConsole(t, r, "SYSLINUX 6.04", "nowhere boot disk", "nowhere: trusting publisher keys", "E2E-MARK-OK")
	})
	t.Run("h-uefi-secureboot-cd", func(t *testing.T) {
		iso := media(t, m.iso)
		r := firmwareBoot(t, m.s, fwSecureBoot, "cd", iso)
		checkConsole(t, r, "GNU GRUB", "nowhere: booting image bb from http://10.0.2.100/images/bb",
			"EFI stub: UEFI Secure Boot is enabled.", "E2E-MARK-OK")
	})
	t.Run("i-bios-cd", func(t *testing.T) {
		iso := media(t, m.iso)
		r := firmwareBoot(t, m.s, fwSeaBIOS, "cd", iso)
		checkConsole(t, r, "ISOLINUX 6.04", "nowhere boot disk", "E2E-MARK-OK")
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
	if !strings.Contains(r.console, "reboot: Power down") {
		t.Errorf("the guest did not power off:\n%s", tail(r.console, 40))
	}
}

type firmware int

const (
	fwSeaBIOS firmware = iota
	fwSecureBoot
)

type fwResult struct {
	console string
	marker  time.Duration // power-on to E2E-MARK-OK
}

// firmwareBoot boots the medium file (as a USB stick, a disk or a CD) on fw, with the
// guest reaching s as http://10.0.2.100, until it powers off or 6 minutes pass.
func firmwareBoot(t *testing.T, s *served, fw firmware, as, file string) fwResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	tmp := t.TempDir()
	a := []string{"-nodefaults", "-no-user-config", "-no-reboot", "-accel", "tcg", "-m", "1024", "-smp", "1",
		"-display", "none", "-vga", "none", "-serial", "stdio", "-monitor", "none"}
	switch fw {
	case fwSeaBIOS:
		a = append(a, "-machine", "pc,graphics=off")
	case fwSecureBoot:
		vars := filepath.Join(tmp, "vars.fd")
		b, err := os.ReadFile("/usr/share/OVMF/OVMF_VARS_4M.ms.fd")
		if err != nil {
			t.Fatalf("%v (apt-get install ovmf)", err)
		}
		os.WriteFile(vars, b, 0o644)
		a = append(a, "-machine", "q35,smm=on", "-global", "driver=cfi.pflash01,property=secure,value=on",
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.secboot.fd",
			"-drive", "if=pflash,format=raw,unit=1,file="+vars)
	}
	f := strings.ReplaceAll(file, ",", ",,")
	switch as {
	case "usb":
		a = append(a, "-device", "qemu-xhci", "-drive", "if=none,id=m0,format=raw,snapshot=on,file="+f,
			"-device", "usb-storage,drive=m0,bootindex=1")
	case "disk":
		a = append(a, "-drive", "if=none,id=m0,format=raw,snapshot=on,file="+f, "-device", "virtio-blk-pci,drive=m0,bootindex=1")
	case "cd":
		a = append(a, "-drive", "if=none,id=m0,media=cdrom,readonly=on,file="+f, "-device", "ide-cd,drive=m0,bootindex=1")
	}
	relay := strings.ReplaceAll(strings.Join([]string{env.bin, "vm", "relay", s.addr}, " "), ",", ",,")
	a = append(a, "-netdev", "user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:80-cmd:"+relay,
		"-device", "virtio-net-pci,netdev=n0,romfile=", "-device", "virtio-rng-pci")
	before := s.counts()
	log := consoleLog(t)
	defer log.Close()
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", a...)
	var console bytes.Buffer
	mw := &markWriter{w: io.MultiWriter(log, &console), mark: []byte("E2E-MARK-OK"), start: time.Now()}
	cmd.Stdout, cmd.Stderr = mw, mw
	err := cmd.Run()
	r := fwResult{console: console.String(), marker: mw.at}
	if r.marker > 0 {
		after := s.counts()
		t.Logf("power-on to E2E-MARK-OK: %.1f s (VM ran %.1f s); served %d requests, %d chunk bytes", r.marker.Seconds(),
			time.Since(mw.start).Seconds(), after.Requests-before.Requests, after.ChunkBytes-before.ChunkBytes)
	}
	if err != nil || r.marker == 0 {
		t.Fatalf("VM: %v, marker seen: %v; console:\n%s", err, r.marker > 0, tail(r.console, 120))
	}
	return r
}

// markWriter notes when mark first passes through it.
type markWriter struct {
	w     io.Writer
	mark  []byte
	start time.Time
	at    time.Duration
	last  []byte
}

func (m *markWriter) Write(p []byte) (int, error) {
	if m.at == 0 {
		m.last = append(m.last, p...)
		if bytes.Contains(m.last, m.mark) {
			m.at = time.Since(m.start)
		}
		if len(m.last) > len(m.mark) {
			m.last = m.last[len(m.last)-len(m.mark):]
		}
	}
	return m.w.Write(p)
}
