package bootdisk

import (
	"context"
	"fmt"
	"io"
	"os"
)

const (
	sector = 512
	// ESPStart is where the EFI system partition starts on the disk: 1 MiB, as
	// partitioning tools align it.
	ESPStart = 1 << 20
	// espType is the GPT partition type of an EFI system partition.
	espType = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
)

// WriteGPT makes disk a new file of the size that holds a GPT (primary and backup) and
// one EFI system partition of espSize bytes from ESPStart, marked legacy-BIOS-bootable
// (attribute bit 2, which SYSLINUX's gptmbr.bin looks for), with sfdisk. mbr, when not
// nil, is boot code for the protective MBR (its first 440 bytes; gptmbr.bin); the
// protective partition is then marked active, as some BIOSes want before they run an
// MBR (UEFI ignores the flag).
func WriteGPT(ctx context.Context, disk string, espSize int64, mbr []byte) error {
	if espSize%sector != 0 {
		return fmt.Errorf("partition size %d: not whole sectors", espSize)
	}
	size := ESPStart + espSize + 1<<20 // the backup GPT needs 33 sectors at the end
	f, err := os.OpenFile(disk, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return err
	}
	script := fmt.Sprintf("label: gpt\nunit: sectors\nstart=%d, size=%d, type=%s, name=\"EFI system partition\", attrs=\"LegacyBIOSBootable\"\n",
		ESPStart/sector, espSize/sector, espType)
	if _, err := output(ctx, []byte(script), "sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", disk); err != nil {
		return err
	}
	if mbr == nil {
		return nil
	}
	if len(mbr) > 440 {
		return fmt.Errorf("MBR boot code of %d bytes: at most 440", len(mbr))
	}
	if _, err := f.WriteAt(mbr, 0); err != nil {
		return err
	}
	if _, err := f.WriteAt([]byte{0x80}, 446); err != nil {
		return err
	}
	return f.Sync()
}

// copyAt writes the whole of file src into dst at offset.
func copyAt(dst string, offset int64, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := io.Copy(io.NewOffsetWriter(out, offset), in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
