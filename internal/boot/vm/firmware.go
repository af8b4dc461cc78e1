package vm

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Firmware is what runs when the VM powers on: nothing (qemu loads the kernel itself),
// SeaBIOS, or OVMF (UEFI) with or without Secure Boot. All of it comes from Debian's
// packages (seabios with qemu, ovmf).
type Firmware string

const (
	Direct     Firmware = ""           // qemu loads Kernel and Initrd: no firmware boot, no loader
	SeaBIOS    Firmware = "bios"       // a legacy BIOS PC
	OVMF       Firmware = "uefi"       // a UEFI PC, Secure Boot off
	SecureBoot Firmware = "secureboot" // a UEFI PC as sold: Microsoft's keys enrolled, Secure Boot enforced
	Snakeoil   Firmware = "snakeoil"   // Secure Boot enforced with Debian's test key (PkKek-1-snakeoil) enrolled
)

// Firmwares lists the values ParseFirmware accepts.
var Firmwares = []Firmware{SeaBIOS, OVMF, SecureBoot, Snakeoil}

// ParseFirmware reads a --firmware value ("" and "direct" are Direct).
func ParseFirmware(s string) (Firmware, error) {
	if s == "" || s == "direct" {
		return Direct, nil
	}
	for _, f := range Firmwares {
		if string(f) == s {
			return f, nil
		}
	}
	names := make([]string, len(Firmwares))
	for i, f := range Firmwares {
		names[i] = string(f)
	}
	return "", fmt.Errorf("firmware %q: want direct, %s", s, strings.Join(names, ", "))
}

// OVMFDir is where Debian's ovmf package puts the firmware images; AAVMFDir is where
// qemu-efi-aarch64 puts arm64's (the same EDK II, built for the virt machine).
var (
	OVMFDir  = "/usr/share/OVMF"
	AAVMFDir = "/usr/share/AAVMF"
)

// UEFI says whether f is OVMF in any of its variants.
func (f Firmware) UEFI() bool { return f == OVMF || f == SecureBoot || f == Snakeoil }

// SecureBootEnforced says whether f verifies every EFI binary it starts.
func (f Firmware) SecureBootEnforced() bool { return f == SecureBoot || f == Snakeoil }

// flash returns the firmware's directory, its code image and the variable store template
// f starts from, for a machine of arch.
func (f Firmware) flash(arch string) (dir, code, vars string) {
	if arch == "arm64" {
		// AAVMF's Secure Boot needs no SMM: the variants differ only in the keys enrolled.
		switch f {
		case OVMF:
			return AAVMFDir, "AAVMF_CODE.fd", "AAVMF_VARS.fd"
		case SecureBoot:
			return AAVMFDir, "AAVMF_CODE.ms.fd", "AAVMF_VARS.ms.fd"
		case Snakeoil:
			return AAVMFDir, "AAVMF_CODE.snakeoil.fd", "AAVMF_VARS.snakeoil.fd"
		}
		return "", "", ""
	}
	code, vars = f.ovmf()
	return OVMFDir, code, vars
}

// ovmf returns OVMF's (x86-64) code image and variable store template for f.
func (f Firmware) ovmf() (code, vars string) {
	switch f {
	case OVMF:
		return "OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd"
	case SecureBoot:
		return "OVMF_CODE_4M.secboot.fd", "OVMF_VARS_4M.ms.fd"
	case Snakeoil:
		return "OVMF_CODE_4M.snakeoil.fd", "OVMF_VARS_4M.snakeoil.fd"
	}
	return "", ""
}

// firmwareArgs are the machine and flash arguments for cfg.Firmware; vars is the VM's own
// copy of the variable store.
func firmwareArgs(cfg Config) []string {
	if cfg.arm64() {
		a := []string{"-machine", "virt"}
		if cfg.Firmware.UEFI() {
			dir, code, _ := cfg.Firmware.flash(cfg.Arch)
			a = append(a,
				"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+escape(filepath.Join(dir, code)),
				"-drive", "if=pflash,format=raw,unit=1,file="+escape(cfg.VarsFile))
		}
		return a
	}
	switch {
	case cfg.Firmware == SeaBIOS:
		// graphics=off: SeaBIOS, option ROMs and BIOS loaders (SYSLINUX) print on the serial console.
		return []string{"-machine", "pc,graphics=off"}
	case cfg.Firmware.UEFI():
		code, _ := cfg.Firmware.ovmf()
		machine := "q35"
		var a []string
		if cfg.Firmware.SecureBootEnforced() {
			// The Secure Boot builds keep their variables behind SMM, so the OS cannot change them.
			machine = "q35,smm=on"
			a = append(a, "-global", "driver=cfi.pflash01,property=secure,value=on")
		}
		a = append(a,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+escape(filepath.Join(OVMFDir, code)),
			"-drive", "if=pflash,format=raw,unit=1,file="+escape(cfg.VarsFile))
		return append([]string{"-machine", machine}, a...)
	}
	return []string{"-machine", "pc"}
}

// newVars copies f's variable store template into dir: each VM gets its own, as a PC has
// its own NVRAM (boot entries the firmware adds must not leak into the next test).
func newVars(f Firmware, arch, dir string) (string, error) {
	fwdir, code, vars := f.flash(arch)
	pkg := "ovmf"
	if arch == "arm64" {
		pkg = "qemu-efi-aarch64"
	}
	for _, name := range []string{code, vars} {
		if _, err := os.Stat(filepath.Join(fwdir, name)); err != nil {
			return "", fmt.Errorf("vm: firmware %s: %s is missing (install %s: scripts/install-deps.sh)", f, filepath.Join(fwdir, name), pkg)
		}
	}
	src, err := os.Open(filepath.Join(fwdir, vars))
	if err != nil {
		return "", fmt.Errorf("vm: %w", err)
	}
	defer src.Close()
	dst, err := os.CreateTemp(dir, "nowhere-vm-vars-*.fd")
	if err != nil {
		return "", fmt.Errorf("vm: %w", err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		os.Remove(dst.Name())
		return "", fmt.Errorf("vm: copying %s: %w", vars, err)
	}
	if err := dst.Close(); err != nil {
		os.Remove(dst.Name())
		return "", fmt.Errorf("vm: %w", err)
	}
	return dst.Name(), nil
}

// escape doubles the commas qemu would read as option separators.
func escape(s string) string { return strings.ReplaceAll(s, ",", ",,") }
