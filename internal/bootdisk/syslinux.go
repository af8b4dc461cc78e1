package bootdisk

import (
	"context"
	"path/filepath"
	"strconv"
)

// SyslinuxDir is the directory of SYSLINUX's files on the disk's FAT filesystem (and
// ISOLINUX's on the ISO).
const SyslinuxDir = "syslinux"

// syslinuxFiles are the menu modules and configuration for SYSLINUX or ISOLINUX in dir.
func (l Loaders) syslinuxFiles(dir, cfgName string, cfg []byte) []File {
	files := []File{{Dst: dir + "/" + cfgName, Data: cfg}}
	for _, m := range syslinuxModules {
		files = append(files, File{Dst: dir + "/" + m, Src: filepath.Join(l.SyslinuxMod, m)})
	}
	return files
}

// InstallSyslinux installs SYSLINUX's boot sector and ldlinux.sys into the FAT
// filesystem at offset bytes into disk (a file: SYSLINUX's mtools installer), in
// /syslinux, which must exist. The MBR's code (gptmbr.bin) then loads the boot sector
// of the partition marked legacy-BIOS-bootable.
func InstallSyslinux(ctx context.Context, disk string, offset int64) error {
	return run(ctx, "syslinux", "--install", "--offset", strconv.FormatInt(offset, 10), "--directory", "/"+SyslinuxDir, disk)
}
