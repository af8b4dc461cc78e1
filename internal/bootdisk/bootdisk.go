// Package bootdisk writes boot media that carry a kernel and the nowhere initramfs and
// boot an image streamed over HTTP: a raw GPT disk image for a USB stick, or a hybrid
// ISO 9660 image for a CD (which also boots from a USB stick). Both boot on UEFI, with
// Secure Boot, through Microsoft-signed shim and Debian-signed GRUB (or a signed unified
// kernel image instead), and on legacy BIOS through SYSLINUX/ISOLINUX. The menus offer
// one entry per image. Everything is built from files with the usual tools (mkfs.vfat
// and mtools, sfdisk, syslinux, xorriso): no loop device, no mount, no root.
package bootdisk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Options say what to write.
type Options struct {
	Output string // the file to write (atomically: a temporary file next to it, renamed)
	Kernel string // a bzImage with an EFI stub (Debian's signed vmlinuz)
	Initrd string // the nowhere initramfs
	Menu   Menu
	ISO    bool // a hybrid ISO instead of a disk image
	// UKI, when set, is a signed unified kernel image that is EFI/BOOT/BOOTX64.EFI instead
	// of shim and GRUB: UEFI then boots it without a menu (its command line is its own);
	// BIOS still boots SYSLINUX's menu.
	UKI      string
	Loaders  Loaders   // zero: DefaultLoaders
	Progress io.Writer // a line per slow step (nil: none)
}

// Part is one component of the media and its size.
type Part struct {
	Name string
	Size int64
}

// Report is what was written.
type Report struct {
	Size      int64  // of the file
	Container Part   // the disk's EFI system partition, or the ISO's EFI boot image
	Parts     []Part // kernel, initramfs, loaders, ...
}

func (o *Options) say(format string, args ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, "bootdisk: "+format+"\n", args...)
	}
}

// Write writes the media o asks for.
func Write(ctx context.Context, o Options) (Report, error) {
	if o.Output == "" {
		return Report{}, errors.New("no output file")
	}
	if o.Loaders == (Loaders{}) {
		o.Loaders = DefaultLoaders
	}
	for _, f := range []struct{ what, path string }{{"kernel", o.Kernel}, {"initramfs", o.Initrd}, {"unified kernel image", o.UKI}} {
		if f.path == "" && f.what == "unified kernel image" {
			continue
		}
		if st, err := os.Stat(f.path); err != nil {
			return Report{}, fmt.Errorf("%s: %w", f.what, err)
		} else if !st.Mode().IsRegular() {
			return Report{}, fmt.Errorf("%s %s: not a regular file", f.what, f.path)
		}
	}
	var check func(bool) error = o.Loaders.CheckDisk
	if o.ISO {
		check = o.Loaders.CheckISO
	}
	if err := check(o.UKI == ""); err != nil {
		return Report{}, err
	}
	grub, err := GRUB(o.Menu)
	if err != nil {
		return Report{}, err
	}
	var sys []byte
	if l := o.Loaders; l.BIOS() {
		if sys, err = SYSLINUX(o.Menu); err != nil {
			return Report{}, err
		}
	}
	dir := filepath.Dir(o.Output)
	work, err := os.MkdirTemp(dir, "."+filepath.Base(o.Output)+".tmp-")
	if err != nil {
		return Report{}, err
	}
	defer os.RemoveAll(work)
	out := filepath.Join(work, "out")
	l := o.Loaders

	// The UEFI boot files: on the disk's ESP, or in the ISO's El Torito EFI image.
	grubBin := l.GRUB
	if o.ISO {
		grubBin = l.GRUBCD
	}
	var efi []File
	if o.UKI != "" {
		efi = []File{{Dst: l.BootFile(), Src: o.UKI}}
	} else {
		// shim starts grubx64.efi / grubaa64.efi (and mm*.efi) from its own directory.
		efi = []File{
			{Dst: l.BootFile(), Src: l.Shim},
			{Dst: "EFI/BOOT/grub" + l.efiSuffix() + ".efi", Src: grubBin},
			{Dst: "EFI/BOOT/mm" + l.efiSuffix() + ".efi", Src: l.MokManager},
		}
		if !o.ISO {
			// Debian's signed GRUB reads grub.cfg from its prefix, /EFI/debian; the copy in
			// EFI/BOOT/ is for a GRUB started from there without one.
			efi = append(efi, File{Dst: "EFI/BOOT/grub.cfg", Data: grub}, File{Dst: "EFI/debian/grub.cfg", Data: grub})
		}
	}
	payload := []File{{Dst: KernelPath[1:], Src: o.Kernel}, {Dst: InitrdPath[1:], Src: o.Initrd}}
	if o.UKI != "" && !l.BIOS() {
		payload = nil // the UKI carries them, and no other loader is on the media
	}

	var rep Report
	if o.ISO {
		efiImg := filepath.Join(work, "efi.img")
		size, err := fatSize(efi)
		if err != nil {
			return Report{}, err
		}
		o.say("making the El Torito EFI image (%d MiB FAT)", size>>20)
		if err := MakeFAT(ctx, efiImg, size, espLabel, 0, efi); err != nil {
			return Report{}, err
		}
		files := append(payload, File{Dst: isoDiskInfo, Data: []byte("nowhere boot media\n")})
		if o.UKI == "" {
			files = append(files, File{Dst: isoGRUBDir + "/grub.cfg", Data: grub})
		}
		if l.BIOS() {
			files = append(files, l.syslinuxFiles(isoDir, "isolinux.cfg", sys)...)
		}
		o.say("writing the ISO image with xorriso")
		if err := writeISO(ctx, l, out, work, files, efiImg); err != nil {
			return Report{}, err
		}
		rep.Container = Part{"El Torito EFI boot image (FAT)", size}
	} else {
		files := append(payload, efi...)
		if l.BIOS() {
			files = append(files, l.syslinuxFiles(SyslinuxDir, "syslinux.cfg", sys)...)
		}
		size, err := fatSize(files)
		if err != nil {
			return Report{}, err
		}
		esp := filepath.Join(work, "esp.img")
		o.say("making the EFI system partition (%d MiB FAT)", size>>20)
		if err := MakeFAT(ctx, esp, size, espLabel, ESPStart/sector, files); err != nil {
			return Report{}, err
		}
		var mbr []byte
		if l.BIOS() {
			if mbr, err = os.ReadFile(l.GPTMBR); err != nil {
				return Report{}, err
			}
			o.say("writing the GPT, the partition and SYSLINUX")
		} else {
			o.say("writing the GPT and the partition")
		}
		if err := WriteGPT(ctx, out, size, mbr); err != nil {
			return Report{}, err
		}
		if err := copyAt(out, ESPStart, esp); err != nil {
			return Report{}, err
		}
		if l.BIOS() {
			if err := InstallSyslinux(ctx, out, ESPStart); err != nil {
				return Report{}, err
			}
		}
		rep.Container = Part{"EFI system partition (FAT)", size}
	}
	// The parts, for the summary.
	type part struct {
		name  string
		files []File
	}
	var parts []part
	if payload != nil {
		parts = []part{{"kernel", payload[:1]}, {"initramfs", payload[1:]}}
	}
	if o.UKI != "" {
		parts = append(parts, part{"unified kernel image", efi})
	} else {
		parts = append(parts, part{"shim", efi[:1]}, part{"GRUB", efi[1:2]}, part{"MokManager", efi[2:3]})
	}
	switch {
	case !l.BIOS():
	case o.ISO:
		parts = append(parts, part{"ISOLINUX", append(l.syslinuxFiles("", "", nil)[1:], File{Src: l.ISOLINUX})})
	default:
		parts = append(parts, part{"SYSLINUX", l.syslinuxFiles("", "", nil)[1:]}) // and ldlinux.sys
	}
	for _, p := range parts {
		var n int64
		for _, f := range p.files {
			s, err := f.size()
			if err != nil {
				return Report{}, err
			}
			n += s
		}
		rep.Parts = append(rep.Parts, Part{p.name, n})
	}
	st, err := os.Stat(out)
	if err != nil {
		return Report{}, err
	}
	rep.Size = st.Size()
	if err := os.Chmod(out, 0o644); err != nil {
		return Report{}, err
	}
	if err := os.Rename(out, o.Output); err != nil {
		return Report{}, err
	}
	return rep, nil
}
