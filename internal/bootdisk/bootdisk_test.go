package bootdisk

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"github.com/nowhere-boot/nowhere/internal/testutil"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
		testutil.Missing(t, err)
	}
	if _, err := exec.LookPath("mdir"); err != nil {
		testutil.Missing(t, "mtools is not installed")
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
	// The filesystem is clean (fsck.vfat of a copy of the partition) and the slack small.
	part := filepath.Join(t.TempDir(), "esp.img")
	os.WriteFile(part, raw[ESPStart:ESPStart+esp.Size*sector], 0o644)
	if out, err := exec.Command("fsck.vfat", "-n", part).CombinedOutput(); err != nil {
		t.Errorf("fsck.vfat -n of the ESP: %v\n%s", err, out)
	}
	if rep.Size > 2*int64(len(k))+8<<20+8<<20 {
		t.Errorf("disk image of %d bytes for a %d-byte kernel: too much slack", rep.Size, len(k))
	}
}

// checkGRUB checks the entries of a grub.cfg made from testMenu: in order, the default
// first, each with its command line and the initramfs, on the screen and the serial port.
func checkGRUB(t *testing.T, cfg string) {
	t.Helper()
	if check, err := exec.LookPath("grub-script-check"); err == nil {
		f := filepath.Join(t.TempDir(), "grub.cfg")
		os.WriteFile(f, []byte(cfg), 0o644)
		if out, err := exec.Command(check, f).CombinedOutput(); err != nil {
			t.Errorf("grub-script-check refuses grub.cfg: %v\n%s\n%s", err, out, cfg)
		}
	}
	for _, want := range []string{
		"serial --unit=0 --speed=115200", "terminal_input console serial\n", "terminal_output console serial\n",
		"set timeout=2\n", "set default=0\n",
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("grub.cfg lacks %q:\n%s", want, cfg)
		}
	}
	i := strings.Index(cfg, "menuentry 'debian' --id image0 {")
	j := strings.Index(cfg, "menuentry 'alpine (version 3)' --id image1 {")
	if i < 0 || j < i {
		t.Errorf("grub.cfg: want the entries debian then alpine:\n%s", cfg)
	}
	for _, want := range []string{
		"  linux /vmlinuz nowhere.image=http://boot.example.org/store/images/debian nowhere.mirror=http://mirror.example.org/store console=ttyS0,115200 panic=-1\n",
		"  linux /vmlinuz nowhere.image=https://m.example.org/images/alpine/3 nowhere.mirror=http://mirror.example.org/store console=ttyS0,115200 panic=-1\n",
		"  initrd /initrd.img\n",
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
		"LABEL image0\n  MENU LABEL debian\n  LINUX /vmlinuz\n  INITRD /initrd.img\n  APPEND nowhere.image=http://boot.example.org/store/images/debian nowhere.mirror=http://mirror.example.org/store console=ttyS0,115200 panic=-1\n",
		"LABEL image1\n  MENU LABEL alpine (version 3)\n"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("syslinux.cfg lacks %q:\n%s", want, cfg)
		}
	}
}

func TestISOImage(t *testing.T) {
	needTools(t, true)
	kernel, initrd := payload(t)
	out := filepath.Join(t.TempDir(), "boot.iso")
	rep, err := Write(context.Background(), Options{Output: out, Kernel: kernel, Initrd: initrd, Menu: testMenu(), ISO: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ISO image: %d bytes, parts %+v", rep.Size, rep.Parts)
	// El Torito: ISOLINUX for BIOS, the FAT image for UEFI.
	rpt, err := exec.Command("xorriso", "-indev", out, "-report_el_torito", "plain").CombinedOutput()
	if err != nil {
		t.Fatalf("xorriso: %v\n%s", err, rpt)
	}
	for _, re := range []string{`El Torito boot img :\s+1\s+BIOS\s+y\s+none`, `El Torito boot img :\s+2\s+UEFI\s+y\s+none`,
		`El Torito img path :\s+1\s+/isolinux/isolinux.bin`, `El Torito img path :\s+2\s+/boot/grub/efi.img`,
		`isohybrid-suitable`} {
		if !regexp.MustCompile(re).Match(rpt) {
			t.Errorf("El Torito report lacks %s:\n%s", re, rpt)
		}
	}
	// The ISO 9660 filesystem.
	ls, err := exec.Command("xorriso", "-indev", out, "-find", "/", "-type", "f").CombinedOutput()
	if err != nil {
		t.Fatalf("xorriso -find: %v\n%s", err, ls)
	}
	for _, want := range []string{"'/vmlinuz'", "'/initrd.img'", "'/.disk/info'", "'/boot/grub/grub.cfg'", "'/boot/grub/efi.img'",
		"'/isolinux/isolinux.bin'", "'/isolinux/isolinux.cfg'", "'/isolinux/ldlinux.c32'", "'/isolinux/menu.c32'",
		"'/isolinux/libutil.c32'", "'/isolinux/libcom32.c32'"} {
		if !strings.Contains(string(ls), want) {
			t.Errorf("the ISO lacks %s:\n%s", want, ls)
		}
	}
	dir := t.TempDir()
	extract := func(name string) string {
		dst := filepath.Join(dir, filepath.Base(name))
		if out, err := exec.Command("xorriso", "-osirrox", "on", "-indev", out, "-extract", name, dst).CombinedOutput(); err != nil {
			t.Fatalf("xorriso -extract %s: %v\n%s", name, err, out)
		}
		b, _ := os.ReadFile(dst)
		return string(b)
	}
	checkGRUB(t, extract("/boot/grub/grub.cfg"))
	checkSYSLINUX(t, extract("/isolinux/isolinux.cfg"))
	extract("/boot/grub/efi.img")
	efi := filepath.Join(dir, "efi.img")
	files := mtools(t, "mdir", "-/", "-b", "-a", "-i", efi, "::/")
	for _, want := range []string{"::/EFI/BOOT/BOOTX64.EFI", "::/EFI/BOOT/grubx64.efi", "::/EFI/BOOT/mmx64.efi"} {
		if !strings.Contains(files+"\n", want+"\n") {
			t.Errorf("the EFI image lacks %s; it holds:\n%s", want, files)
		}
	}
	gcd, _ := os.ReadFile(DefaultLoaders.GRUBCD)
	if got := mtools(t, "mtype", "-i", efi, "::/EFI/BOOT/grubx64.efi"); got != string(gcd) {
		t.Errorf("the EFI image's grubx64.efi is not Debian's CD GRUB (gcdx64.efi)")
	}
	// Hybrid: an MBR with isohdpfx.bin's code and a GPT, for a USB stick.
	raw, _ := os.ReadFile(out)
	hyb, _ := os.ReadFile(DefaultLoaders.ISOHybrid)
	if string(raw[:64]) != string(hyb[:64]) {
		t.Errorf("the ISO's MBR code is not isohdpfx.bin's")
	}
	if string(raw[sector:sector+8]) != "EFI PART" {
		t.Errorf("the ISO has no GPT header at LBA 1 (-isohybrid-gpt-basdat)")
	}
}

func TestBadInputsAreRefused(t *testing.T) {
	kernel, initrd := payload(t)
	dir := t.TempDir()
	for name, c := range map[string]struct {
		change func(*Options)
		want   string
	}{
		"no image":             {func(o *Options) { o.Menu.Entries = nil }, "no image"},
		"not http":             {func(o *Options) { o.Menu.Entries[0].URL = "ftp://x/images/a" }, "ftp://x/images/a"},
		"not an image URL":     {func(o *Options) { o.Menu.Entries[0].URL = "http://x/store/a" }, "http://x/store/a"},
		"quote in URL":         {func(o *Options) { o.Menu.Entries[0].URL = "http://x/images/a'b" }, "not allowed"},
		"dollar in URL":        {func(o *Options) { o.Menu.Entries[0].URL = "http://x/images/$a" }, "not allowed"},
		"space in URL":         {func(o *Options) { o.Menu.Entries[0].URL = "http://x/images/a b" }, "not allowed"},
		"newline in append":    {func(o *Options) { o.Menu.Append = "quiet\n}\nmenuentry x {" }, "not allowed"},
		"semicolon in append":  {func(o *Options) { o.Menu.Append = "quiet; reboot" }, "not allowed"},
		"brace in append":      {func(o *Options) { o.Menu.Append = "a}" }, "not allowed"},
		"quote in title":       {func(o *Options) { o.Menu.Title = "it's" }, "not allowed"},
		"bad mirror":           {func(o *Options) { o.Menu.Mirrors = []string{"http://m/images/x"} }, "nowhere.mirror"},
		"mirror with $":        {func(o *Options) { o.Menu.Mirrors = []string{"http://m/${x}"} }, "not allowed"},
		"same URL twice":       {func(o *Options) { o.Menu.Entries[1].URL = o.Menu.Entries[0].URL }, "twice"},
		"same name twice":      {func(o *Options) { o.Menu.Entries[1].URL = "http://other.example.org/images/debian/4" }, "named \"debian\""},
		"negative timeout":     {func(o *Options) { o.Menu.Timeout = -time.Second }, "negative"},
		"no kernel":            {func(o *Options) { o.Kernel = filepath.Join(dir, "none") }, "kernel"},
		"initramfs is a dir":   {func(o *Options) { o.Initrd = dir }, "not a regular file"},
		"missing shim":         {func(o *Options) { o.Loaders = DefaultLoaders; o.Loaders.Shim = "/nonexistent/shimx64.efi.signed" }, "apt-get install shim-signed"},
		"missing GRUB":         {func(o *Options) { o.Loaders = DefaultLoaders; o.Loaders.GRUB = "/nonexistent/grubx64.efi.signed" }, "apt-get install grub-efi-amd64-signed"},
		"missing gptmbr":       {func(o *Options) { o.Loaders = DefaultLoaders; o.Loaders.GPTMBR = "/nonexistent/gptmbr.bin" }, "apt-get install syslinux"},
		"missing menu modules": {func(o *Options) { o.Loaders = DefaultLoaders; o.Loaders.SyslinuxMod = "/nonexistent" }, "apt-get install syslinux-common"},
		"missing isolinux": {func(o *Options) {
			o.ISO = true
			o.Loaders = DefaultLoaders
			o.Loaders.ISOLINUX = "/nonexistent/isolinux.bin"
		}, "apt-get install isolinux"},
	} {
		o := Options{Output: filepath.Join(dir, "out.img"), Kernel: kernel, Initrd: initrd, Menu: testMenu()}
		c.change(&o)
		_, err := Write(context.Background(), o)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want one line with %q", name, err, c.want)
		}
	}
	if left, _ := os.ReadDir(dir); len(left) > 0 {
		t.Errorf("refused writes left files: %v", left)
	}
}

// TestFailedWriteLeavesNothing: a failure halfway (a filesystem too small for its files)
// leaves neither the output nor temporary files, and an existing output untouched.
func TestFailedWriteLeavesNothing(t *testing.T) {
	needTools(t, false)
	dir := t.TempDir()
	out := filepath.Join(dir, "out.img")
	os.WriteFile(out, []byte("old"), 0o644)
	big := filepath.Join(t.TempDir(), "big")
	os.WriteFile(big, make([]byte, 3<<20), 0o644)
	err := MakeFAT(context.Background(), filepath.Join(t.TempDir(), "fat.img"), 1<<20, "X", 0, []File{{Dst: "big", Src: big}})
	if err == nil {
		t.Fatal("a 3 MiB file fit a 1 MiB FAT")
	}
	kernel, initrd := payload(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // every tool is killed at once
	if _, err := Write(ctx, Options{Output: out, Kernel: kernel, Initrd: initrd, Menu: testMenu()}); err == nil {
		t.Fatal("Write with a cancelled context succeeded")
	}
	entries, _ := os.ReadDir(dir)
	if b, _ := os.ReadFile(out); string(b) != "old" || len(entries) != 1 {
		t.Errorf("after a failed write: output %q, directory %v", b, entries)
	}
}

// TestUKIDisk: with a unified kernel image, BOOTX64.EFI is that image and neither shim
// nor GRUB is on the ESP; SYSLINUX still is, with the kernel and initramfs it boots.
func TestUKIDisk(t *testing.T) {
	needTools(t, false)
	kernel, initrd := payload(t)
	ukiFile := filepath.Join(t.TempDir(), "uki.efi")
	os.WriteFile(ukiFile, []byte(strings.Repeat("MZ-uki", 50000)), 0o644)
	out := filepath.Join(t.TempDir(), "disk.img")
	rep, err := Write(context.Background(), Options{Output: out, Kernel: kernel, Initrd: initrd, Menu: testMenu(), UKI: ukiFile})
	if err != nil {
		t.Fatal(err)
	}
	img := out + "@@1048576"
	files := mtools(t, "mdir", "-/", "-b", "-a", "-i", img, "::/")
	for _, gone := range []string{"grubx64.efi", "mmx64.efi", "grub.cfg"} {
		if strings.Contains(files, gone) {
			t.Errorf("the ESP holds %s beside a UKI:\n%s", gone, files)
		}
	}
	for _, want := range []string{"::/EFI/BOOT/BOOTX64.EFI", "::/vmlinuz", "::/initrd.img", "::/syslinux/ldlinux.sys"} {
		if !strings.Contains(files+"\n", want+"\n") {
			t.Errorf("the ESP lacks %s:\n%s", want, files)
		}
	}
	u, _ := os.ReadFile(ukiFile)
	if got := mtools(t, "mtype", "-i", img, "::/EFI/BOOT/BOOTX64.EFI"); got != string(u) {
		t.Errorf("BOOTX64.EFI is not the UKI")
	}
	if names := fmt.Sprint(rep.Parts); !strings.Contains(names, "unified kernel image") || strings.Contains(names, "shim") {
		t.Errorf("parts %s", names)
	}
	// Without shim and GRUB installed, a UKI disk is still possible.
	l := DefaultLoaders
	l.Shim, l.GRUB, l.MokManager = "/nonexistent", "/nonexistent", "/nonexistent"
	if _, err := Write(context.Background(), Options{Output: out, Kernel: kernel, Initrd: initrd, Menu: testMenu(), UKI: ukiFile, Loaders: l}); err != nil {
		t.Errorf("a UKI disk without shim and GRUB installed: %v", err)
	}
}

// TestArm64Media: media for arm64 machines are UEFI only: shimaa64 as
// EFI/BOOT/BOOTAA64.EFI with grubaa64.efi and mmaa64.efi beside it, no SYSLINUX on the
// disk, no ISOLINUX boot entry on the ISO; a missing arm64 loader names its package and
// how to get it on another architecture.
func TestArm64Media(t *testing.T) {
	if _, err := exec.LookPath("xorriso"); err != nil {
		testutil.Missing(t, "xorriso is not installed")
	}
	needTools(t, false)
	root := t.TempDir()
	l := ArmLoaders(root)
	for _, p := range []string{l.Shim, l.MokManager, l.GRUB, l.GRUBCD} {
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(strings.Repeat(filepath.Base(p), 1000)), 0o644)
	}
	kernel, initrd := payload(t)
	out := filepath.Join(t.TempDir(), "arm64.img")
	rep, err := Write(context.Background(), Options{Output: out, Kernel: kernel, Initrd: initrd, Menu: testMenu(), Loaders: l})
	if err != nil {
		t.Fatal(err)
	}
	files := mtools(t, "mdir", "-/", "-b", "-a", "-i", out+"@@1048576", "::/")
	for _, want := range []string{"::/EFI/BOOT/BOOTAA64.EFI", "::/EFI/BOOT/grubaa64.efi", "::/EFI/BOOT/mmaa64.efi", "::/EFI/debian/grub.cfg", "::/vmlinuz", "::/initrd.img"} {
		if !strings.Contains(files+"\n", want+"\n") {
			t.Errorf("the arm64 ESP lacks %s:\n%s", want, files)
		}
	}
	if strings.Contains(files, "syslinux") || strings.Contains(files, "X64") {
		t.Errorf("the arm64 ESP holds x86 loaders:\n%s", files)
	}
	if got := mtools(t, "mtype", "-i", out+"@@1048576", "::/EFI/BOOT/BOOTAA64.EFI"); !strings.HasPrefix(got, "shimaa64") {
		t.Errorf("BOOTAA64.EFI is not shimaa64: %.40q", got)
	}
	if names := fmt.Sprint(rep.Parts); strings.Contains(names, "SYSLINUX") {
		t.Errorf("parts %s", names)
	}
	iso := filepath.Join(t.TempDir(), "arm64.iso")
	if _, err := Write(context.Background(), Options{Output: iso, ISO: true, Kernel: kernel, Initrd: initrd, Menu: testMenu(), Loaders: l}); err != nil {
		t.Fatal(err)
	}
	report, err := exec.Command("xorriso", "-indev", iso, "-report_el_torito", "plain").CombinedOutput()
	if err != nil {
		t.Fatalf("xorriso: %v\n%s", err, report)
	}
	if r := string(report); !strings.Contains(r, "UEFI") || strings.Contains(r, "BIOS") {
		t.Errorf("the arm64 ISO's El Torito entries are not UEFI alone:\n%s", r)
	}
	os.Remove(l.GRUB)
	_, err = Write(context.Background(), Options{Output: filepath.Join(t.TempDir(), "x.img"), Kernel: kernel, Initrd: initrd, Menu: testMenu(), Loaders: l})
	if err == nil || !strings.Contains(err.Error(), "grub-efi-arm64-signed:arm64") || !strings.Contains(err.Error(), "fetch-kernel.sh arm64") {
		t.Errorf("missing grubaa64: %v", err)
	}
}
