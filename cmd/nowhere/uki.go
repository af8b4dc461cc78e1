package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nowhere-boot/nowhere/internal/boot/cmdline"
	"github.com/nowhere-boot/nowhere/internal/uki"
	"github.com/nowhere-boot/nowhere/internal/units"
)

type ukiOptions struct {
	output, kernel, initrd, cmdline, stub, osRelease string
	signKey, signCert, signPassFile                  string
	arch                                             string
}

func newUKICommand() *cobra.Command {
	var o ukiOptions
	cmd := &cobra.Command{
		Use:   "uki -o FILE --kernel VMLINUZ --initrd INITRAMFS [--cmdline ARGS] [--sign-key KEY --sign-cert CERT]",
		Short: "Build a unified kernel image (kernel, initramfs and command line in one signed EFI file)",
		Long: `Uki builds a unified kernel image: systemd's EFI stub (package systemd-boot-efi) with
the kernel, the initramfs (nowhere initramfs), the kernel command line and an os-release
added as sections by objcopy. Firmware starts it like any EFI program, e.g. as
EFI/BOOT/BOOTX64.EFI on a USB stick's EFI system partition.

With --sign-key and --sign-cert (PEM; sbsigntool's sbsign), one Secure Boot signature
covers the kernel, the initramfs with the publisher keys baked into it, and the command
line: firmware that trusts the certificate (in its db, or shim's MOK list) refuses the
file if any byte of it changed, and the stub ignores any other command line. An
encrypted key needs --sign-pass-file. The result is checked with sbverify --cert.

Without a key the UKI is unsigned: it boots only on firmware with Secure Boot off, or is
meant to be signed elsewhere (sbsign, or a signing service). See docs/security.md.

The architecture is the kernel's (an x86-64 bzImage, or an arm64 EFI-stub Image;
--arch to say it): an arm64 UKI is EFI/BOOT/BOOTAA64.EFI, made with arm64's stub
(linuxaa64.efi.stub from systemd-boot-efi:arm64; on another machine the copy
scripts/fetch-kernel.sh arm64 unpacks under .cache/kernel/VERSION/x) and
aarch64-linux-gnu-objcopy (binutils-aarch64-linux-gnu).`,
		Example: `  nowhere initramfs -o initrd.img --modules .cache/kernel/6.1.0-56-amd64/modules --key publisher.pub
  nowhere uki -o BOOTX64.EFI --kernel .cache/kernel/6.1.0-56-amd64/vmlinuz --initrd initrd.img \
      --cmdline "console=ttyS0 nowhere.image=http://boot.example.org/images/debian" \
      --sign-key db.key --sign-cert db.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runUKI(cmd, o) },
	}
	f := cmd.Flags()
	f.StringVarP(&o.output, "output", "o", "", "the UKI to write (replaced only once complete)")
	f.StringVar(&o.kernel, "kernel", "", "the kernel: an EFI-stub bzImage (Debian's vmlinuz, e.g. .cache/kernel/VERSION/vmlinuz)")
	f.StringVar(&o.initrd, "initrd", "", "the initramfs (nowhere initramfs)")
	f.StringVar(&o.cmdline, "cmdline", "", "the kernel command line, fixed in the UKI (e.g. console=ttyS0 nowhere.image=URL)")
	f.StringVar(&o.stub, "stub", "", "systemd's EFI stub (default: "+uki.DefaultStub+", on arm64 linuxaa64.efi.stub)")
	f.StringVar(&o.arch, "arch", "", "the kernel's architecture, amd64 or arm64 (default: read from --kernel)")
	f.StringVar(&o.osRelease, "os-release", "", "os-release file for the .osrel section (default: one naming nowhere and the kernel)")
	f.StringVar(&o.signKey, "sign-key", "", "sign for Secure Boot with this PEM private key (with --sign-cert)")
	f.StringVar(&o.signCert, "sign-cert", "", "the PEM certificate of --sign-key (the one enrolled in the firmware's db or as a MOK)")
	f.StringVar(&o.signPassFile, "sign-pass-file", "", "read the passphrase of an encrypted --sign-key from the first line of this file")
	_ = cmd.MarkFlagRequired("output")
	_ = cmd.MarkFlagRequired("kernel")
	_ = cmd.MarkFlagRequired("initrd")
	return cmd
}

func runUKI(cmd *cobra.Command, o ukiOptions) error {
	if (o.signKey == "") != (o.signCert == "") {
		return errors.New("--sign-key and --sign-cert go together")
	}
	if o.signPassFile != "" && o.signKey == "" {
		return errors.New("--sign-pass-file needs --sign-key")
	}
	// The command line is fixed once signed: a mistake in nowhere's own parameters fails
	// here, with the boot's parser, and not on a machine at boot.
	if strings.ContainsAny(o.cmdline, "\n\r\x00") {
		return errors.New("--cmdline must be one line (no newline or NUL)")
	}
	if _, err := cmdline.Parse(cmdline.Layer{Name: "--cmdline", Text: o.cmdline}); err != nil {
		return err
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
	arch, err := bootArch(o.arch, o.kernel)
	if err != nil {
		return err
	}
	if o.stub == "" {
		if o.stub, err = ukiStub(arch, o.kernel); err != nil {
			return err
		}
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	// Ctrl-C (the root context) stops the tools and removes the temporary files: no
	// half-written output.
	err = uki.Build(ctx, uki.Options{
		Output: o.output, Kernel: o.kernel, Initrd: o.initrd, Cmdline: o.cmdline, Arch: arch,
		Stub: o.stub, OSRelease: o.osRelease,
		SignKey: o.signKey, SignCert: o.signCert, Passphrase: pass,
	})
	if errors.Is(err, uki.ErrNeedPassphrase) {
		return fmt.Errorf("%w (--sign-pass-file FILE)", err)
	}
	if err != nil {
		return err
	}
	st, err := os.Stat(o.output)
	if err != nil {
		return err
	}
	fmt.Printf("wrote %s: %s (kernel %s, initramfs %s)\n", o.output, units.Bytes(st.Size()), o.kernel, o.initrd)
	if o.cmdline != "" {
		fmt.Printf("command line: %s\n", o.cmdline)
	} else {
		fmt.Println("command line: empty (the stub takes no other)")
	}
	if o.signCert != "" {
		fmt.Printf("signed for Secure Boot by %s (verified with sbverify --cert %s)\n", certSubject(o.signCert), o.signCert)
	} else {
		fmt.Println("unsigned: boots only with Secure Boot off (or sign it elsewhere, e.g. sbsign)")
	}
	return nil
}

func certSubject(file string) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return file
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return file
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return file
	}
	return c.Subject.String()
}
