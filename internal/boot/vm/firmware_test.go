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

// TestNewVarsIsAPrivateCopy: every OVMF VM gets its own NVRAM, a copy of the template.
func TestNewVarsIsAPrivateCopy(t *testing.T) {
	if testing.Short() {
		t.Skip("reads the ovmf package's files")
	}
	for _, f := range []Firmware{OVMF, SecureBoot, Snakeoil} {
		p, err := newVars(f, t.TempDir())
		if err != nil {
			t.Fatal(err) // make test installs ovmf
		}
		_, tmpl := f.flash()
		a, _ := os.ReadFile(p)
		b, _ := os.ReadFile(OVMFDir + "/" + tmpl)
		if len(a) == 0 || string(a) != string(b) {
			t.Errorf("%s: the copy (%d bytes) differs from %s (%d bytes)", f, len(a), tmpl, len(b))
		}
	}
}
