package bootdisk

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func needTools(t *testing.T, iso bool) {
	t.Helper()
	var err error
	if iso {
		err = DefaultLoaders.CheckISO(true)
	} else {
		err = DefaultLoaders.CheckDisk(true)
	}
	if err != nil {
		t.Skip(err)
	}
	if _, err := exec.LookPath("mdir"); err != nil {
		t.Skip("mtools is not installed")
	}
}

func testMenu() Menu {
	return Menu{
		Entries: []Entry{{URL: "http://boot.example.org/store/images/debian"}, {URL: "https://m.example.org/images/alpine/3"}},
		Mirrors: []string{"http://mirror.example.org/store"},
		Append:  "console=ttyS0,115200 panic=-1",
		Timeout: 1500 * time.Millisecond,
	}
}

// payload makes a small stand-in kernel and initramfs (the media's layout does not
// depend on their content).
func payload(t *testing.T) (kernel, initrd string) {
	dir := t.TempDir()
	kernel, initrd = filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initrd.img")
	os.WriteFile(kernel, []byte(strings.Repeat("kernel", 100000)), 0o644)
	os.WriteFile(initrd, []byte(strings.Repeat("initrd", 200000)), 0o644)
	return kernel, initrd
}

func mtools(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

func TestDiskImage(t *testing.T) {
	needTools(t, false)
	kernel, initrd := payload(t)
	out := filepath.Join(t.TempDir(), "disk.img")
	rep, err := Write(context.Background(), Options{Output: out, Kernel: kernel, Initrd: initrd, Menu: testMenu()})
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(out)
	if err != nil || st.Size() != rep.Size {
		t.Fatalf("stat %v, size %d, report %d", err, st.Size(), rep.Size)
	}
	t.Logf("disk image: %d bytes, parts %+v", rep.Size, rep.Parts)
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}

	// The GPT: one EFI system partition at 1 MiB, legacy-BIOS-bootable.
	cmd := exec.Command("sfdisk", "--json", out)
	j, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	var pt struct {
		PartitionTable struct {
			Label      string
			Partitions []struct {
				Start, Size int64
				Type, Attrs string
			}
		}
	}
	if err := json.Unmarshal(j, &pt); err != nil {
		t.Fatal(err)
	}
	p := pt.PartitionTable
	if p.Label != "gpt" || len(p.Partitions) != 1 {
		t.Fatalf("partition table %s", j)
	}
	esp := p.Partitions[0]
	if esp.Start != ESPStart/sector || esp.Type != espType || !strings.Contains(esp.Attrs, "LegacyBIOSBootable") {
		t.Errorf("partition %+v: want an ESP at sector 2048, legacy-BIOS-bootable", esp)
	}
	// And the attribute is bit 2 of the entry's attributes (at LBA 2, the first entry).
	raw, _ := os.ReadFile(out)
	if attrs := binary.LittleEndian.Uint64(raw[2*sector+48:]); attrs&(1<<2) == 0 {
		t.Errorf("GPT entry attributes %#x: bit 2 (legacy BIOS bootable) not set", attrs)
	}
	// The protective MBR carries gptmbr.bin's code and is marked active.
	mbr, _ := os.ReadFile(DefaultLoaders.GPTMBR)
	if string(raw[:len(mbr)]) != string(mbr) {
		t.Errorf("the MBR's code is not gptmbr.bin")
	}
	if raw[446] != 0x80 || raw[446+4] != 0xee || raw[510] != 0x55 || raw[511] != 0xaa {
		t.Errorf("protective MBR entry: status %#x type %#x signature %x", raw[446], raw[450], raw[510:512])
	}
	// The FAT boot sector records the partition's start (hidden sectors) and is SYSLINUX's.
	bs := raw[ESPStart:]
	if hidden := binary.LittleEndian.Uint32(bs[28:]); hidden != ESPStart/sector {
		t.Errorf("FAT hidden sectors %d, want %d", hidden, ESPStart/sector)
	}
	if !strings.Contains(string(bs[:512]), "SYSLINUX") && !strings.Contains(string(bs[:512]), "SYSLX") {
		t.Errorf("the partition's boot sector is not SYSLINUX's")
	}

	img := out + "@@" + "1048576"
	files := mtools(t, "mdir", "-/", "-b", "-a", "-i", img, "::/")
	for _, want := range []string{"::/vmlinuz", "::/initrd.img", "::/EFI/BOOT/BOOTX64.EFI", "::/EFI/BOOT/grubx64.efi",
		"::/EFI/BOOT/mmx64.efi", "::/EFI/BOOT/grub.cfg", "::/EFI/debian/grub.cfg", "::/syslinux/ldlinux.sys",
		"::/syslinux/ldlinux.c32", "::/syslinux/menu.c32", "::/syslinux/libutil.c32", "::/syslinux/libcom32.c32",
		"::/syslinux/syslinux.cfg"} {
		if !strings.Contains(files+"\n", want+"\n") {
			t.Errorf("the ESP lacks %s; it holds:\n%s", want, files)
		}
	}
	shim, _ := os.ReadFile(DefaultLoaders.Shim)
	if got := mtools(t, "mtype", "-i", img, "::/EFI/BOOT/BOOTX64.EFI"); got != string(shim) {
		t.Errorf("BOOTX64.EFI is not shim (%d bytes, shim %d)", len(got), len(shim))
	}
	k, _ := os.ReadFile(kernel)
	if got := mtools(t, "mtype", "-i", img, "::/vmlinuz"); got != string(k) {
		t.Errorf("/vmlinuz is not the kernel")
	}
	cfg := mtools(t, "mtype", "-i", img, "::/EFI/debian/grub.cfg")
	want, _ := GRUB(testMenu())
	if cfg != string(want) || mtools(t, "mtype", "-i", img, "::/EFI/BOOT/grub.cfg") != cfg {
		t.Errorf("grub.cfg on the disk:\n%s\nwant:\n%s", cfg, want)
	}
	checkGRUB(t, cfg)
	sys := mtools(t, "mtype", "-i", img, "::/syslinux/syslinux.cfg")
	checkSYSLINUX(t, sys)
	// The filesystem is clean and the slack small.
	if out, err := exec.Command("fsck.vfat", "-n", img[:len(img)-len("@@1048576")]).CombinedOutput(); err == nil {
		_ = out // fsck.vfat does not read at an offset; checked on the ESP below
	}
	if rep.Size > 2*int64(len(k))+8<<20+8<<20 {
		t.Errorf("disk image of %d bytes for a %d-byte kernel: too much slack", rep.Size, len(k))
	}
}

// checkGRUB checks the entries of a grub.cfg made from testMenu: in order, the default
// first, each with its command line and the initramfs, on the screen and the serial port.
func checkGRUB(t *testing.T, cfg string) {
	t.Helper()
	for _, want := range []string{
		"serial --unit=0 --speed=115200\n", "terminal_input console serial\n", "terminal_output console serial\n",
		"set timeout=2\n", "set default=0\n",
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("grub.cfg lacks %q:\n%s", want, cfg)
		}
	}
	i := strings.Index(cfg, "menuentry 'nowhere: debian' --id image0 {")
	j := strings.Index(cfg, "menuentry 'nowhere: alpine version 3' --id image1 {")
	if i < 0 || j < i {
		t.Errorf("grub.cfg: want the entries debian then alpine:\n%s", cfg)
	}
	for _, want := range []string{
		"\tlinux /vmlinuz nowhere.image=http://boot.example.org/store/images/debian nowhere.mirror=http://mirror.example.org/store console=ttyS0,115200 panic=-1\n",
		"\tlinux /vmlinuz nowhere.image=https://m.example.org/images/alpine/3 nowhere.mirror=http://mirror.example.org/store console=ttyS0,115200 panic=-1\n",
		"\tinitrd /initrd.img\n",
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("grub.cfg lacks %q:\n%s", want, cfg)
		}
	}
}

func checkSYSLINUX(t *testing.T, cfg string) {
	t.Helper()
	if !strings.HasPrefix(cfg, "SERIAL 0 115200\n") {
		t.Errorf("syslinux.cfg does not start with SERIAL:\n%s", cfg)
	}
	for _, want := range []string{"UI menu.c32\n", "TIMEOUT 15\n", "DEFAULT image0\n",
		"LABEL image0\n  MENU LABEL nowhere: debian\n  LINUX /vmlinuz\n  INITRD /initrd.img\n  APPEND nowhere.image=http://boot.example.org/store/images/debian nowhere.mirror=http://mirror.example.org/store console=ttyS0,115200 panic=-1\n",
		"LABEL image1\n  MENU LABEL nowhere: alpine version 3\n"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("syslinux.cfg lacks %q:\n%s", want, cfg)
		}
	}
}
