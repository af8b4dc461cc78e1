package bootdisk

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Loaders are the boot loader files and tools the media are made of, all from Debian
// packages.
type Loaders struct {
	// Arch is the machines the media boot: amd64 ("", PCs: UEFI and legacy BIOS) or arm64
	// (UEFI only: EFI/BOOT/BOOTAA64.EFI; the BIOS fields below are not used).
	Arch        string
	Shim        string // shimx64.efi.signed (Microsoft-signed): EFI/BOOT/BOOTX64.EFI
	MokManager  string // mmx64.efi.signed: what shim runs to enroll keys
	GRUB        string // grubx64.efi.signed (Debian-signed), for a disk
	GRUBCD      string // gcdx64.efi.signed, for a CD: finds its grub.cfg on the ISO 9660 filesystem
	GPTMBR      string // SYSLINUX's MBR code for GPT disks
	SyslinuxMod string // SYSLINUX's BIOS modules (menu.c32 and its libraries)
	ISOLINUX    string // isolinux.bin
	ISOHybrid   string // isohdpfx.bin: the MBR of a hybrid ISO
}

// DefaultLoaders are where Debian 12's packages put them.
var DefaultLoaders = Loaders{
	Shim:        "/usr/lib/shim/shimx64.efi.signed",
	MokManager:  "/usr/lib/shim/mmx64.efi.signed",
	GRUB:        "/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed",
	GRUBCD:      "/usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed",
	GPTMBR:      "/usr/lib/SYSLINUX/gptmbr.bin",
	SyslinuxMod: "/usr/lib/syslinux/modules/bios",
	ISOLINUX:    "/usr/lib/ISOLINUX/isolinux.bin",
	ISOHybrid:   "/usr/lib/ISOLINUX/isohdpfx.bin",
}

// ArmLoaders are Debian's arm64 loaders under root: "/" on an arm64 Debian, or the tree
// scripts/fetch-kernel.sh arm64 unpacks shim-signed, shim-helpers-arm64-signed and
// grub-efi-arm64-signed into on another machine (.cache/kernel/VERSION/x).
func ArmLoaders(root string) Loaders {
	return Loaders{
		Arch:       "arm64",
		Shim:       filepath.Join(root, "usr/lib/shim/shimaa64.efi.signed"),
		MokManager: filepath.Join(root, "usr/lib/shim/mmaa64.efi.signed"),
		GRUB:       filepath.Join(root, "usr/lib/grub/arm64-efi-signed/grubaa64.efi.signed"),
		GRUBCD:     filepath.Join(root, "usr/lib/grub/arm64-efi-signed/gcdaa64.efi.signed"),
	}
}

// BIOS says whether the media also boot legacy BIOS PCs (SYSLINUX, ISOLINUX).
func (l Loaders) BIOS() bool { return l.Arch != "arm64" }

// efiSuffix is the architecture in UEFI's file names: BOOTX64.EFI, grubaa64.efi.
func (l Loaders) efiSuffix() string {
	if l.Arch == "arm64" {
		return "aa64"
	}
	return "x64"
}

// BootFile is the removable-media path UEFI starts: EFI/BOOT/BOOTX64.EFI or BOOTAA64.EFI.
func (l Loaders) BootFile() string { return "EFI/BOOT/BOOT" + strings.ToUpper(l.efiSuffix()) + ".EFI" }

// pkg names the Debian package of an EFI loader, and how to get it for a foreign arch.
func (l Loaders) pkg(name string) string {
	if l.Arch == "arm64" {
		if name == "grub-efi-amd64-signed" {
			name = "grub-efi-arm64-signed"
		}
		return name + ":arm64; on another architecture scripts/fetch-kernel.sh arm64 unpacks it"
	}
	return name
}

// syslinuxModules are the modules the SYSLINUX/ISOLINUX menu needs (ldlinux.c32 is the
// core's second half; menu.c32 needs libutil and libcom32).
var syslinuxModules = []string{"ldlinux.c32", "menu.c32", "libutil.c32", "libcom32.c32"}

type need struct{ path, pkg string }

// check returns one error naming the Debian package of the first file or tool missing.
func check(files []need, tools []need) error {
	for _, f := range files {
		if _, err := os.Stat(f.path); err != nil {
			return fmt.Errorf("%s is missing (apt-get install %s)", f.path, f.pkg)
		}
	}
	for _, t := range tools {
		if _, err := exec.LookPath(t.path); err != nil {
			return fmt.Errorf("%s is not installed (apt-get install %s)", t.path, t.pkg)
		}
	}
	return nil
}

func (l Loaders) modules() []need {
	var n []need
	for _, m := range syslinuxModules {
		n = append(n, need{filepath.Join(l.SyslinuxMod, m), "syslinux-common"})
	}
	return n
}

// fatTools build a FAT filesystem in a file, without mounting it.
var fatTools = []need{{"mkfs.vfat", "dosfstools"}, {"mmd", "mtools"}, {"mcopy", "mtools"}}

// CheckDisk says what is missing to build a disk image (uefi: with shim and GRUB).
func (l Loaders) CheckDisk(uefi bool) error {
	var files []need
	tools := append([]need{{"sfdisk", "fdisk"}}, fatTools...)
	if l.BIOS() {
		files = append([]need{{l.GPTMBR, "syslinux"}}, l.modules()...)
		tools = append(tools, need{"syslinux", "syslinux"})
	}
	if uefi {
		files = append(files, need{l.Shim, l.pkg("shim-signed")}, need{l.MokManager, l.pkg("shim-signed")}, need{l.GRUB, l.pkg("grub-efi-amd64-signed")})
	}
	return check(files, tools)
}

// CheckISO says what is missing to build an ISO image (uefi: with shim and GRUB).
func (l Loaders) CheckISO(uefi bool) error {
	var files []need
	if l.BIOS() {
		files = append([]need{{l.ISOLINUX, "isolinux"}, {l.ISOHybrid, "isolinux"}}, l.modules()...)
	}
	if uefi {
		files = append(files, need{l.Shim, l.pkg("shim-signed")}, need{l.MokManager, l.pkg("shim-signed")}, need{l.GRUBCD, l.pkg("grub-efi-amd64-signed")})
	}
	tools := append([]need{{"xorriso", "xorriso"}}, fatTools...)
	return check(files, tools)
}
