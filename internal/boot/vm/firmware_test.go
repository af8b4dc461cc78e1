package vm

import (
	"os"
	"strings"
	"testing"
)

// TestFirmwareArgs: each firmware gets its machine and flash, boot media come in boot
// order, and a tap VM has no user-mode network.
func TestFirmwareArgs(t *testing.T) {
	a := strings.Join(Args(Config{Firmware: SecureBoot, VarsFile: "/tmp/v.fd", USB: "stick.img", CDROM: "cd.iso",
		Disks: []string{"d.img"}, Memory: 512, CPUs: 1, Relay: []string{"relay"}}, "tcg"), " ")
	for _, want := range []string{
		"-machine q35,smm=on", "driver=cfi.pflash01,property=secure,value=on",
		"if=pflash,format=raw,unit=0,readonly=on,file=" + OVMFDir + "/OVMF_CODE_4M.secboot.fd",
		"if=pflash,format=raw,unit=1,file=/tmp/v.fd",
		"usb-storage,bus=xhci.0,drive=usbstick,removable=on,bootindex=1",
		"ide-cd,drive=cd,bus=ide.0,bootindex=2", "virtio-blk-pci,drive=disk0,bootindex=3",
		"virtio-net-pci,netdev=n0,romfile= ", "guestfwd=tcp:10.0.2.100:80-cmd:relay",
	} {
		if !strings.Contains(a, want) {
			t.Errorf("qemu args lack %q:\n%s", want, a)
		}
	}
	if strings.Contains(a, "-kernel") {
		t.Errorf("a firmware boot must not hand qemu the kernel: %s", a)
	}
	a = strings.Join(Args(Config{Firmware: SeaBIOS, NICROM: true, ROMDir: "/roms", Tap: "tap0", Memory: 512, CPUs: 1,
		FwCfg: []string{"name=opt/x,string=n"}}, "tcg"), " ")
	for _, want := range []string{"-machine pc,graphics=off", "-L /roms", "-netdev tap,id=n0,ifname=tap0,script=no,downscript=no",
		"virtio-net-pci,netdev=n0,bootindex=1", "-fw_cfg name=opt/x,string=n"} {
		if !strings.Contains(a, want) {
			t.Errorf("qemu args lack %q:\n%s", want, a)
		}
	}
	if strings.Contains(a, "user,") || strings.Contains(a, "pflash") || strings.Contains(a, "romfile=") {
		t.Errorf("a SeaBIOS VM on a tap with its NIC ROM: %s", a)
	}
}

func TestParseFirmware(t *testing.T) {
	for in, want := range map[string]Firmware{"": Direct, "direct": Direct, "bios": SeaBIOS, "uefi": OVMF, "secureboot": SecureBoot, "snakeoil": Snakeoil} {
		if got, err := ParseFirmware(in); err != nil || got != want {
			t.Errorf("ParseFirmware(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseFirmware("coreboot"); err == nil || !strings.Contains(err.Error(), "secureboot") {
		t.Errorf("ParseFirmware(coreboot): %v, want an error listing the choices", err)
	}
}

// TestNewVarsIsAPrivateCopy: every UEFI VM (OVMF, AAVMF on arm64) gets its own NVRAM, a
// copy of the template of its firmware variant.
func TestNewVarsIsAPrivateCopy(t *testing.T) {
	if testing.Short() {
		t.Skip("reads the ovmf and qemu-efi-aarch64 packages' files")
	}
	for _, arch := range []string{"amd64", "arm64"} {
		for _, f := range []Firmware{OVMF, SecureBoot, Snakeoil} {
			p, err := newVars(f, arch, t.TempDir())
			if err != nil {
				t.Fatal(err) // make test installs ovmf and qemu-efi-aarch64
			}
			dir, _, tmpl := f.flash(arch)
			a, _ := os.ReadFile(p)
			b, _ := os.ReadFile(dir + "/" + tmpl)
			if len(a) == 0 || string(a) != string(b) {
				t.Errorf("%s %s: the copy (%d bytes) differs from %s (%d bytes)", arch, f, len(a), tmpl, len(b))
			}
		}
	}
}

// TestArgsArm64: an arm64 VM is qemu's virt machine with a max CPU and its console on the
// PL011 UART, AAVMF in pflash for a UEFI boot, a CD on virtio-scsi (virt has no IDE); and
// what it does not have (a BIOS, the x86 iPXE ROM) is refused in one line.
func TestArgsArm64(t *testing.T) {
	a := strings.Join(Args(Config{Arch: "arm64", Kernel: "Image", Initrd: "i", Append: "quiet", Memory: 512, CPUs: 1}, "tcg"), " ")
	for _, want := range []string{"-machine virt", "-cpu max", "-append console=ttyAMA0 quiet", "-kernel Image"} {
		if !strings.Contains(a, want) {
			t.Errorf("direct arm64 args lack %q: %s", want, a)
		}
	}
	if strings.Contains(a, "-vga") || strings.Contains(a, "ttyS0") {
		t.Errorf("direct arm64 args have x86 parts: %s", a)
	}
	a = strings.Join(Args(Config{Arch: "arm64", Firmware: SecureBoot, VarsFile: "v.fd", CDROM: "x.iso", Memory: 512, CPUs: 1}, "tcg"), " ")
	for _, want := range []string{"file=" + AAVMFDir + "/AAVMF_CODE.ms.fd", "unit=1,file=v.fd", "scsi-cd,drive=cd"} {
		if !strings.Contains(a, want) {
			t.Errorf("arm64 secureboot args lack %q: %s", want, a)
		}
	}
	if strings.Contains(a, "smm") || strings.Contains(a, "q35") || strings.Contains(a, "-kernel") {
		t.Errorf("arm64 firmware args have x86 or direct-boot parts: %s", a)
	}
	for _, c := range []Config{{Arch: "arm64", Firmware: SeaBIOS}, {Arch: "arm64", NetBoot: "http://x/boot.ipxe"}, {Arch: "arm64", Firmware: OVMF, NICROM: true}, {Arch: "riscv64"}} {
		if _, err := Run(t.Context(), c); err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("Run(%+v): %v, want a one-line refusal", c, err)
		}
	}
}
