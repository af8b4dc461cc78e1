package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/nowhere-boot/nowhere/internal/bootdisk"
	"github.com/nowhere-boot/nowhere/internal/uki"
	"github.com/nowhere-boot/nowhere/internal/units"
)

type bootdiskOptions struct {
	output  string
	kernel  string
	modules string
	images  []string
	mirrors []string
	keys    []string
	append  string
	timeout time.Duration
	iso     bool
	binary  string
	drivers []string // more drivers in the initramfs: a real PC's NIC or disk controller

	uki                             bool
	signKey, signCert, signPassFile string
	arch                            string // amd64 or arm64 ("": the kernel's, else amd64)
}

func newBootdiskCommand() *cobra.Command {
	var o bootdiskOptions
	cmd := &cobra.Command{
		Use:   "bootdisk -o FILE --image URL... [--key PUB]... [--kernel VMLINUZ --modules /lib/modules/VERSION] [--iso] [--uki --sign-key KEY --sign-cert CERT]",
		Short: "Write a USB stick or CD image that boots images streamed over HTTP",
		Long: `Bootdisk writes one file that boots a machine into an image streamed over HTTP:
the kernel and the nowhere initramfs (built here, with the --key publisher keys baked in)
are on the media, the root comes from the network.

By default the file is a raw GPT disk image to write onto a USB stick (dd if=FILE
of=/dev/sdX bs=4M conv=fsync): one EFI system partition, sized to fit, which UEFI boots
through shim (signed by Microsoft) and GRUB (signed by Debian), so with Secure Boot on,
and which legacy BIOS boots through SYSLINUX (gptmbr.bin in the protective MBR, the
partition marked legacy-BIOS-bootable). With --iso it is a hybrid ISO 9660 image instead:
a CD (El Torito: ISOLINUX for BIOS, shim and GRUB for UEFI) that also boots when written
to a USB stick.

Both menus (GRUB's and SYSLINUX's, on the screen and on the first serial port at
115200 baud) list one entry per --image, the first the default, booted after --timeout.
Each entry boots the kernel with nowhere.image=URL, a nowhere.mirror= per --mirror, then
--append (default "` + bootdisk.DefaultAppend + `": the console on the screen and on
ttyS0). The command line is shown and can be edited before booting ('e' in GRUB, Tab in
SYSLINUX). The first --image and the mirrors are also baked into the initramfs.

--kernel is a bzImage (Debian's signed vmlinuz: GRUB boots it under Secure Boot only if
shim trusts its signature) and --modules its /lib/modules/VERSION; both default to the
kernel scripts/fetch-kernel.sh caches in .cache/kernel/VERSION (of the current directory
or of the repository this binary was built in, bin/..). The boot loaders come from
Debian's shim-signed, grub-efi-amd64-signed, syslinux, syslinux-common and isolinux
packages; the media are built with mkfs.vfat (dosfstools), mtools, sfdisk (fdisk),
syslinux and xorriso, without mounting anything.

With --uki, UEFI boots a unified kernel image instead of shim and GRUB: systemd's EFI
stub with the kernel, the initramfs and the FIRST --image's command line in one file
(nowhere uki), signed with --sign-key and --sign-cert (PEM; --sign-pass-file for an
encrypted key) for firmware that trusts that certificate (its db, or shim's MOK list).
There is no menu on UEFI then and the command line cannot be edited: the firmware's
signature check covers kernel, initramfs, keys and command line alike. Legacy BIOS
still boots SYSLINUX's menu of every --image.

Security: without --uki, GRUB has shim check the kernel's signature, but nobody checks
the initramfs on the stick (nor the keys baked in it) or grub.cfg: whoever can write to
the stick can change what it trusts. The image itself is verified at boot against the
baked keys. See docs/security.md.

--arch arm64 writes media for arm64 machines (servers, cloud instances that boot from
a disk): UEFI only (no BIOS part), shimaa64 as EFI/BOOT/BOOTAA64.EFI with grubaa64
(Debian's signed arm64 loaders: shim-signed:arm64, grub-efi-arm64-signed:arm64, which
scripts/fetch-kernel.sh arm64 unpacks under .cache/kernel/VERSION/x on another machine)
and Debian's arm64 kernel, whose EFI stub is an Image; the console is ttyAMA0 by
default. The architecture is also read from --kernel when that is given.`,
		Example: `  nowhere bootdisk -o nowhere.img --image http://boot.example.org/store/images/debian --key publisher.pub
  dd if=nowhere.img of=/dev/sdX bs=4M conv=fsync
  nowhere bootdisk -o nowhere.iso --iso --image http://boot.example.org/store/images/debian \
      --image http://boot.example.org/store/images/alpine --mirror http://mirror.example.org/store \
      --key publisher.pub --timeout 10s --append "console=tty0 quiet"
  nowhere bootdisk -o signed.img --uki --sign-key db.key --sign-cert db.pem \
      --image http://boot.example.org/store/images/debian --key publisher.pub
  nowhere bootdisk -o arm64.img --arch arm64 --image http://boot.example.org/store/images/debian-arm64 --key publisher.pub`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBootdisk(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.output, "output", "o", "", "the file to write (a raw disk image, or an ISO with --iso)")
	f.StringVar(&o.kernel, "kernel", "", "the kernel, a bzImage (default: vmlinuz in .cache/kernel/VERSION)")
	f.StringVar(&o.modules, "modules", "", "its modules, /lib/modules/VERSION (default: modules in .cache/kernel/VERSION)")
	f.StringArrayVar(&o.images, "image", nil, "an image to offer, http(s)://HOST/PATH/images/NAME[/VERSION] (repeatable; the first is the default)")
	f.StringArrayVar(&o.mirrors, "mirror", nil, "another base URL of the same store, on every entry (repeatable)")
	f.StringArrayVar(&o.keys, "key", nil, "trust this publisher key at boot: a minisign public key file or its base64 string (repeatable; baked into the initramfs)")
	f.StringVar(&o.append, "append", "", "the rest of every entry's kernel command line (default \""+bootdisk.DefaultAppend+"\", on arm64 \""+bootdisk.ArmAppend+"\")")
	f.StringVar(&o.arch, "arch", "", "the machines' architecture, amd64 or arm64 (default: --kernel's, else amd64)")
	durationVar(f, &o.timeout, "timeout", bootdisk.DefaultTimeout, "how long the menus wait before booting the first entry (at least 1s)")
	f.StringArrayVar(&o.drivers, "driver", nil, "also put this driver in the initramfs, loaded when its hardware is present (repeatable; as nowhere initramfs --driver)")
	f.BoolVar(&o.iso, "iso", false, "write a hybrid ISO 9660 image (CD, or USB stick) instead of a disk image")
	f.StringVar(&o.binary, "binary", "", "the static nowhere binary to use as the initramfs' /init (default: this one)")
	f.BoolVar(&o.uki, "uki", false, "UEFI boots a (signed) unified kernel image with the first --image's command line instead of shim and GRUB: no menu on UEFI")
	f.StringVar(&o.signKey, "sign-key", "", "with --uki: sign it for Secure Boot with this PEM private key (with --sign-cert)")
	f.StringVar(&o.signCert, "sign-cert", "", "with --uki: the PEM certificate of --sign-key (enrolled in the firmware's db or as a MOK)")
	f.StringVar(&o.signPassFile, "sign-pass-file", "", "with --uki: read the passphrase of an encrypted --sign-key from the first line of this file")
	_ = cmd.MarkFlagRequired("output")
	return cmd
}

func runBootdisk(ctx context.Context, o bootdiskOptions) error {
	arch, err := bootArch(o.arch, o.kernel)
	if err != nil {
		return err
	}
	if o.append == "" {
		o.append = bootdisk.DefaultAppend
		if arch == "arm64" {
			o.append = bootdisk.ArmAppend
		}
	}
	menu := bootdisk.Menu{Mirrors: o.mirrors, Append: o.append, Timeout: o.timeout}
	for _, u := range o.images {
		menu.Entries = append(menu.Entries, bootdisk.Entry{URL: u})
	}
	if err := menu.Check(); err != nil {
		return err
	}
	if !o.uki && (o.signKey != "" || o.signCert != "" || o.signPassFile != "") {
		return errors.New("--sign-key, --sign-cert and --sign-pass-file sign the unified kernel image: they need --uki")
	}
	if (o.signKey == "") != (o.signCert == "") {
		return errors.New("--sign-key and --sign-cert go together")
	}
	if o.signPassFile != "" && o.signKey == "" {
		return errors.New("--sign-pass-file needs --sign-key")
	}
	var pass string
	if o.signPassFile != "" {
		b, err := os.ReadFile(o.signPassFile)
		if err != nil {
			return fmt.Errorf("--sign-pass-file: %w", err)
		}
		pass, _, _ = strings.Cut(string(b), "\n")
		pass = strings.TrimSuffix(pass, "\r")
	}
	loaders := bootdisk.DefaultLoaders
	if arch == "arm64" {
		root, err := archRoot(arch, o.kernel)
		if err != nil {
			return err
		}
		loaders = bootdisk.ArmLoaders(root)
	}
	var stub string
	if o.uki {
		var err error
		if stub, err = ukiStub(arch, o.kernel); err != nil {
			return err
		}
		if _, err := os.Stat(stub); err != nil {
			pkg := "systemd-boot-efi"
			if arch == "arm64" {
				pkg = "systemd-boot-efi:arm64; on another architecture scripts/fetch-kernel.sh arm64 unpacks it"
			}
			return fmt.Errorf("%s is missing (apt-get install %s)", stub, pkg)
		}
		if err := uki.CheckTools(arch, o.signKey != ""); err != nil {
			return err
		}
	}
	if st, err := os.Stat(o.output); err == nil && st.IsDir() {
		return fmt.Errorf("%s is a directory", o.output)
	}
	if st, err := os.Stat(filepath.Dir(o.output)); err != nil || !st.IsDir() {
		return fmt.Errorf("%s: the directory %s does not exist", o.output, filepath.Dir(o.output))
	}
	check := loaders.CheckDisk
	if o.iso {
		check = loaders.CheckISO
	}
	if err := check(!o.uki); err != nil {
		return err
	}
	if o.kernel == "" || o.modules == "" {
		kdir, err := cachedKernel(arch)
		if err != nil {
			return err
		}
		if o.kernel == "" {
			o.kernel = filepath.Join(kdir, "vmlinuz")
		}
		if o.modules == "" {
			o.modules = filepath.Join(kdir, "modules")
		}
		fmt.Fprintf(os.Stderr, "bootdisk: kernel %s, modules %s\n", o.kernel, o.modules)
	}
	if arch == "arm64" {
		if got, err := kernelArch(o.kernel); err != nil {
			return fmt.Errorf("--kernel: %w", err)
		} else if got != "arm64" {
			return fmt.Errorf("--kernel %s is not an arm64 Image", o.kernel)
		}
	} else if err := checkBzImage(o.kernel); err != nil {
		return err
	}

	// Ctrl-C (the root context, ctx) stops the tools; the deferred cleanup removes tmp.
	tmp, err := os.MkdirTemp(filepath.Dir(o.output), "."+filepath.Base(o.output)+".initrd-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	initrd := filepath.Join(tmp, "initrd.img")
	fmt.Fprintf(os.Stderr, "bootdisk: building the initramfs\n")
	var summary bytes.Buffer
	err = runInitramfs(initramfsOptions{
		output: initrd, modules: o.modules, binary: o.binary, compress: "gzip", caCerts: defaultCACerts,
		keys: o.keys, image: o.images[0], mirrors: o.mirrors, extraDrivers: o.drivers, out: &summary,
	})
	if err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	for _, l := range strings.Split(strings.TrimSpace(summary.String()), "\n") {
		fmt.Fprintf(os.Stderr, "bootdisk: initramfs: %s\n", l)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var ukiFile string
	if o.uki {
		ukiFile = filepath.Join(tmp, filepath.Base(loaders.BootFile()))
		fmt.Fprintf(os.Stderr, "bootdisk: building the unified kernel image (command line: %s)\n", menu.Cmdline(0))
		err := uki.Build(ctx, uki.Options{Output: ukiFile, Kernel: o.kernel, Initrd: initrd, Cmdline: menu.Cmdline(0), Arch: arch, Stub: stub,
			SignKey: o.signKey, SignCert: o.signCert, Passphrase: pass})
		if errors.Is(err, uki.ErrNeedPassphrase) {
			return fmt.Errorf("%w (--sign-pass-file FILE)", err)
		}
		if err != nil {
			return err
		}
	}
	rep, err := bootdisk.Write(ctx, bootdisk.Options{
		Output: o.output, Kernel: o.kernel, Initrd: initrd, Menu: menu, ISO: o.iso, UKI: ukiFile,
		Loaders: loaders, Progress: os.Stderr,
	})
	if err != nil {
		return err
	}
	printBootdisk(os.Stdout, o, arch, menu, rep)
	return nil
}

func printBootdisk(w io.Writer, o bootdiskOptions, arch string, menu bootdisk.Menu, rep bootdisk.Report) {
	uefi := "UEFI with Secure Boot: shim + GRUB"
	if o.uki {
		uefi = "UEFI: an unsigned unified kernel image, no menu"
		if o.signCert != "" {
			uefi = "UEFI with Secure Boot: a unified kernel image signed by " + certSubject(o.signCert) + ", no menu"
		}
	}
	bios := "; BIOS: SYSLINUX)"
	if o.iso {
		bios = "; BIOS: ISOLINUX)"
	}
	if arch == "arm64" {
		bios = "; arm64, no BIOS)"
	}
	kind := "disk image (GPT, for a USB stick; " + uefi + bios
	if o.iso {
		kind = "hybrid ISO image (CD or USB stick; " + uefi + bios
	}
	fmt.Fprintf(w, "wrote %s: %s, %s\n", o.output, units.Bytes(rep.Size), kind)
	var parts []string
	for _, p := range rep.Parts {
		parts = append(parts, fmt.Sprintf("%s %s", p.Name, units.Bytes(p.Size)))
	}
	where := "all on an"
	if o.iso {
		where = "the UEFI loaders in an"
	}
	fmt.Fprintf(w, "parts: %s; %s %s of %s\n", strings.Join(parts, ", "), where, rep.Container.Name, units.Bytes(rep.Container.Size))
	if o.uki {
		fmt.Fprintf(w, "UEFI boots: %s\n", menu.Cmdline(0))
		if len(menu.Entries) > 1 && arch == "arm64" {
			fmt.Fprintf(w, "note: the unified kernel image boots only the first --image; arm64 media have no other menu (%d images given)\n", len(menu.Entries))
		} else if len(menu.Entries) > 1 {
			fmt.Fprintf(w, "note: on UEFI the unified kernel image boots only the first --image; the others are on the BIOS menu only (%d entries)\n", len(menu.Entries))
		}
		if o.signCert == "" {
			fmt.Fprintln(w, "note: the unified kernel image is unsigned: it boots only with Secure Boot off")
		}
	}
	for i := range menu.Entries {
		def := ""
		if i == 0 {
			def = fmt.Sprintf(" (default, after %s)", menu.Timeout)
		}
		on := ""
		if o.uki && arch == "arm64" {
			if i > 0 {
				break
			}
			on = " (the UKI's)"
		} else if o.uki {
			on = " (BIOS menu)"
		}
		fmt.Fprintf(w, "entry %d%s%s: %s\n", i+1, def, on, menu.Cmdline(i))
	}
}

// cachedKernel finds the kernel of arch (amd64, arm64) scripts/fetch-kernel.sh ARCH
// unpacked: .cache/kernel/VERSION-ARCH with a "done" file, in the current directory or in
// the repository this binary lives in (bin/nowhere -> bin/../.cache); $NOWHERE_KVER picks
// a version of that arch, as for the script; otherwise the highest version.
func cachedKernel(arch string) (string, error) {
	var roots []string
	if wd, err := os.Getwd(); err == nil {
		roots = append(roots, filepath.Join(wd, ".cache/kernel"))
	}
	if exe, err := os.Executable(); err == nil {
		roots = append(roots, filepath.Join(filepath.Dir(filepath.Dir(exe)), ".cache/kernel"))
	}
	want := os.Getenv("NOWHERE_KVER")
	if !strings.HasSuffix(want, "-"+arch) {
		want = ""
	}
	for _, r := range roots {
		done, _ := filepath.Glob(filepath.Join(r, "*-"+arch, "done"))
		var dirs []string
		for _, d := range done {
			dir := filepath.Dir(d)
			if want == "" || filepath.Base(dir) == want {
				dirs = append(dirs, dir)
			}
		}
		if len(dirs) > 0 {
			return slices.MaxFunc(dirs, func(a, b string) int { return versionCompare(filepath.Base(a), filepath.Base(b)) }), nil
		}
	}
	script := "scripts/fetch-kernel.sh"
	if arch != "amd64" {
		script += " " + arch
	}
	return "", fmt.Errorf("no %s kernel: give --kernel VMLINUZ and --modules /lib/modules/VERSION, or run %s (it caches Debian's in .cache/kernel/VERSION)", arch, script)
}

// versionCompare compares kernel versions as sort -V does: runs of digits by value.
func versionCompare(a, b string) int {
	for a != "" && b != "" {
		da, db := digits(a), digits(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if c := cmp.Or(cmp.Compare(len(na), len(nb)), strings.Compare(na, nb)); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

func digits(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}

// checkBzImage refuses what a boot loader cannot boot as a Linux kernel (an ELF vmlinux
// above all: the cache holds one next to the vmlinuz).
func checkBzImage(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("--kernel: %w", err)
	}
	defer f.Close()
	var h [0x206]byte
	if _, err := io.ReadFull(f, h[:]); err != nil || string(h[0x202:0x206]) != "HdrS" {
		if string(h[:4]) == "\x7fELF" {
			return fmt.Errorf("--kernel %s is an ELF vmlinux: boot loaders need the bzImage (vmlinuz)", path)
		}
		return fmt.Errorf("--kernel %s is not a Linux bzImage (no HdrS boot header)", path)
	}
	return nil
}
