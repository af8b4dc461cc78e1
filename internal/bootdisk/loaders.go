package bootdisk

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Loaders are the boot loader files and tools the media are made of, all from Debian
// packages.
type Loaders struct {
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
	files := []need{{l.GPTMBR, "syslinux"}}
	if uefi {
		files = append(files, need{l.Shim, "shim-signed"}, need{l.MokManager, "shim-signed"}, need{l.GRUB, "grub-efi-amd64-signed"})
	}
	tools := append([]need{{"sfdisk", "fdisk"}, {"syslinux", "syslinux"}}, fatTools...)
	return check(append(files, l.modules()...), tools)
}

// CheckISO says what is missing to build an ISO image (uefi: with shim and GRUB).
func (l Loaders) CheckISO(uefi bool) error {
	files := []need{{l.ISOLINUX, "isolinux"}, {l.ISOHybrid, "isolinux"}}
	if uefi {
		files = append(files, need{l.Shim, "shim-signed"}, need{l.MokManager, "shim-signed"}, need{l.GRUBCD, "grub-efi-amd64-signed"})
	}
	tools := append([]need{{"xorriso", "xorriso"}}, fatTools...)
	return check(append(files, l.modules()...), tools)
}
