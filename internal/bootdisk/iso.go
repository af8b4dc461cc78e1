package bootdisk

import (
	"context"
	"os"
	"path/filepath"
	"strings"
)

// Paths on the ISO 9660 filesystem.
const (
	isoDir      = "isolinux"          // ISOLINUX, its modules and isolinux.cfg
	isoGRUBDir  = "boot/grub"         // grub.cfg: where Debian's CD GRUB (gcdx64.efi) looks
	isoEFIImage = "boot/grub/efi.img" // the El Torito EFI boot image (a FAT filesystem)
	isoDiskInfo = ".disk/info"        // what Debian's CD GRUB searches for to find its root
	isoVolumeID = "NOWHERE"
	espLabel    = "NOWHERE"
)

// graft is one xorriso -graft-points argument: the file at src appears as dst on the ISO.
func graft(dst, src string) string {
	esc := strings.NewReplacer(`\`, `\\`, `=`, `\=`)
	return "/" + esc.Replace(dst) + "=" + esc.Replace(src)
}

// writeISO writes a hybrid ISO 9660 image of files to out with xorriso: BIOS boots
// ISOLINUX from El Torito (and, written to a USB stick, through isohdpfx.bin in its MBR;
// not on arm64 media, which have no BIOS part);
// UEFI boots the El Torito EFI image efiImage (shim and GRUB, or a UKI), which is also a
// GPT partition for when the ISO is a USB stick (-isohybrid-gpt-basdat). work holds the
// generated files.
func writeISO(ctx context.Context, l Loaders, out, work string, files []File, efiImage string) error {
	args := []string{"-as", "mkisofs", "-o", out, "-quiet", "-V", isoVolumeID, "-R", "-J", "-joliet-long", "-graft-points"}
	if l.BIOS() {
		args = append(args, "-b", isoDir+"/isolinux.bin", "-c", isoDir+"/boot.cat", "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table",
			"-isohybrid-mbr", l.ISOHybrid, "-eltorito-alt-boot")
		files = append(files, File{Dst: isoDir + "/isolinux.bin", Src: l.ISOLINUX})
	} else {
		args = append(args, "-c", "boot/boot.cat") // El Torito's catalog, of the EFI image alone
	}
	args = append(args, "-e", isoEFIImage, "-no-emul-boot", "-isohybrid-gpt-basdat")
	files = append(files, File{Dst: isoEFIImage, Src: efiImage})
	for _, f := range files {
		src := f.Src
		if src == "" {
			src = filepath.Join(work, "iso-"+strings.ReplaceAll(f.Dst, "/", "_"))
			if err := os.WriteFile(src, f.Data, 0o644); err != nil {
				return err
			}
		}
		args = append(args, graft(f.Dst, src))
	}
	return run(ctx, "xorriso", args...)
}
