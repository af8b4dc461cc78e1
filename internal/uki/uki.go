// Package uki builds a unified kernel image (UKI): systemd's EFI stub with the kernel, the
// initramfs, the kernel command line and an os-release added as PE sections, so that one
// signature covers all of them. It runs the system's tools: objcopy (binutils) adds the
// sections, sbsign and sbverify (sbsigntool) sign and check the result, openssl decrypts
// an encrypted signing key.
//
// The sections are placed after the stub's own, each at the next address aligned to the
// stub's section alignment (at least 4 KiB), from the sizes of the parts: any size of
// kernel and initramfs fits.
package uki

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"debug/pe"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// DefaultStub is Debian's systemd-stub (package systemd-boot-efi); ArmStub is its arm64
// build's path (systemd-boot-efi:arm64), under / on an arm64 Debian or under the tree
// scripts/fetch-kernel.sh arm64 unpacks it into.
const (
	DefaultStub = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"
	ArmStub     = "/usr/lib/systemd/boot/efi/linuxaa64.efi.stub"
)

// arch is what a UKI of one architecture is made of and checked against.
type arch struct {
	name    string // amd64, arm64
	machine uint16 // the PE machine of the stub and the kernel
	objcopy string // the objcopy that writes this architecture's PE images
	binutil string // its Debian package
}

func archOf(name string) (arch, error) {
	switch name {
	case "", "amd64":
		return arch{"amd64", pe.IMAGE_FILE_MACHINE_AMD64, "objcopy", "binutils"}, nil
	case "arm64":
		a := arch{"arm64", pe.IMAGE_FILE_MACHINE_ARM64, "aarch64-linux-gnu-objcopy", "binutils-aarch64-linux-gnu"}
		if runtime.GOARCH == "arm64" {
			a.objcopy, a.binutil = "objcopy", "binutils"
		}
		return a, nil
	}
	return arch{}, fmt.Errorf("uki: architecture %q: want amd64 or arm64", name)
}

// Options is one UKI to build.
type Options struct {
	Output string // the UKI to write (replaced whole, never left half-written)
	Kernel string // an x86-64 bzImage with the EFI stub (Debian's vmlinuz)
	Initrd string // the initramfs (nowhere initramfs)
	// Cmdline is the kernel command line (one line: no newline, no NUL). The UKI always
	// has one, a single space when it is empty: systemd-stub takes the command line from
	// whoever starts the UKI (a boot entry, the EFI shell) when the UKI has none.
	Cmdline string
	Stub    string // the EFI stub ("": DefaultStub on amd64; on arm64 it must be given)
	// Arch is the machine's architecture: amd64 ("") or arm64. The kernel (a bzImage or
	// an arm64 EFI-stub Image) and the stub must be of it.
	Arch string
	// OSRelease is an os-release file for the .osrel section ("": a short one naming
	// nowhere and the kernel's version).
	OSRelease string
	// SignKey and SignCert (PEM) sign the UKI for Secure Boot with sbsign; both or
	// neither. Without them the UKI is unsigned: it boots only on firmware with Secure
	// Boot off, or is to be signed elsewhere.
	SignKey, SignCert string
	// Passphrase decrypts an encrypted SignKey ("": the key must not be encrypted).
	Passphrase string
}

// Section is one PE section of a built UKI.
type Section struct {
	Name   string
	VMA    uint64 // ImageBase + VirtualAddress
	Size   uint32 // VirtualSize: the bytes of content
	Offset uint32 // where the content starts in the file
}

// ErrNeedPassphrase: the signing key is encrypted and Options.Passphrase is empty.
var ErrNeedPassphrase = errors.New("is encrypted: give its passphrase")

// sectionAlign is the least alignment of the added sections' addresses.
const sectionAlign = 4096

// Build writes the UKI o describes.
func Build(ctx context.Context, o Options) error {
	if o.Output == "" {
		return errors.New("uki: no output file")
	}
	ar, err := archOf(o.Arch)
	if err != nil {
		return err
	}
	if o.Stub == "" {
		if ar.name != "amd64" {
			return fmt.Errorf("uki: an %s UKI needs its stub (%s from systemd-boot-efi:%s)", ar.name, ArmStub, ar.name)
		}
		o.Stub = DefaultStub
	}
	if (o.SignKey == "") != (o.SignCert == "") {
		return errors.New("uki: signing needs both a key and a certificate")
	}
	if strings.ContainsAny(o.Cmdline, "\n\r\x00") {
		return fmt.Errorf("uki: the command line %q holds a newline or NUL: it must be one line", o.Cmdline)
	}
	tools, err := findTools(ar, o.SignKey != "")
	if err != nil {
		return err
	}
	objcopy, sbsign, sbverify, openssl := tools[0], tools[1], tools[2], tools[3]
	stub, err := readStub(o.Stub, ar)
	if err != nil {
		return err
	}
	uname, err := kernelVersion(o.Kernel, ar)
	if err != nil {
		return err
	}
	if o.Initrd == "" {
		return errors.New("uki: no initramfs given")
	}
	ist, err := os.Stat(o.Initrd)
	if err != nil {
		return fmt.Errorf("uki: initramfs: %w", err)
	}
	if !ist.Mode().IsRegular() || ist.Size() == 0 {
		return fmt.Errorf("uki: initramfs %s is not a non-empty file", o.Initrd)
	}

	tmp, err := os.MkdirTemp("", "nowhere-uki-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	osrel := []byte(fmt.Sprintf("NAME=nowhere\nID=nowhere\nPRETTY_NAME=\"nowhere (Linux %s)\"\nVERSION_ID=%q\nHOME_URL=\"https://github.com/nowhere-boot/nowhere\"\n", uname, uname))
	if o.OSRelease != "" {
		if osrel, err = os.ReadFile(o.OSRelease); err != nil {
			return fmt.Errorf("uki: os-release: %w", err)
		}
		if len(bytes.TrimSpace(osrel)) == 0 {
			return fmt.Errorf("uki: os-release %s is empty", o.OSRelease)
		}
	}
	cmdline := o.Cmdline
	if cmdline == "" {
		cmdline = " " // objcopy drops an empty section
	}
	parts := []struct {
		name, file string
		data       []byte // written to a file in tmp when file is ""
	}{
		{".osrel", "", osrel},
		{".cmdline", "", []byte(cmdline)},
		{".uname", "", []byte(uname)},
		{".linux", o.Kernel, nil},
		{".initrd", o.Initrd, nil},
	}
	args := []string{}
	next := alignUp(stub.end, stub.align)
	for _, p := range parts {
		file := p.file
		if file == "" {
			file = filepath.Join(tmp, strings.TrimPrefix(p.name, "."))
			if err := os.WriteFile(file, p.data, 0o600); err != nil {
				return err
			}
		}
		st, err := os.Stat(file)
		if err != nil {
			return fmt.Errorf("uki: %s: %w", p.name, err)
		}
		size := uint64(st.Size())
		args = append(args, "--add-section", p.name+"="+file,
			"--change-section-vma", fmt.Sprintf("%s=%#x", p.name, stub.imageBase+next))
		next = alignUp(next+size, stub.align)
	}
	if next > 1<<32-1 {
		return fmt.Errorf("uki: kernel and initramfs too large for a PE image (%d bytes of address space)", next)
	}

	dir := filepath.Dir(o.Output)
	unsigned, err := tempNear(dir, o.Output)
	if err != nil {
		return err
	}
	defer os.Remove(unsigned)
	args = append(args, o.Stub, unsigned)
	if err := runTool(ctx, nil, objcopy, args...); err != nil {
		return err
	}
	final := unsigned
	if o.SignKey != "" {
		key, err := plainKey(ctx, openssl, tmp, o.SignKey, o.SignCert, o.Passphrase)
		if err != nil {
			return err
		}
		signed, err := tempNear(dir, o.Output)
		if err != nil {
			return err
		}
		defer os.Remove(signed)
		err = runTool(ctx, nil, sbsign, "--key", key, "--cert", o.SignCert, "--output", signed, unsigned)
		os.Remove(key)
		if err != nil {
			return err
		}
		if err := runTool(ctx, nil, sbverify, "--cert", o.SignCert, signed); err != nil {
			return fmt.Errorf("uki: the signed image does not verify with %s: %w", o.SignCert, err)
		}
		final = signed
	}
	if _, err := Sections(final); err != nil {
		return fmt.Errorf("uki: the image objcopy wrote does not read back: %w", err)
	}
	if err := os.Chmod(final, 0o644); err != nil {
		return err
	}
	return os.Rename(final, o.Output)
}

// Sections lists the PE sections of the file at path, in file order.
func Sections(path string) ([]Section, error) {
	f, err := pe.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	base, _ := optional(f)
	var out []Section
	for _, s := range f.Sections {
		out = append(out, Section{Name: s.Name, VMA: base + uint64(s.VirtualAddress), Size: s.VirtualSize, Offset: s.Offset})
	}
	return out, nil
}

// stubLayout is what placing sections after a stub needs.
type stubLayout struct {
	imageBase uint64
	align     uint64 // section alignment, at least sectionAlign
	end       uint64 // first address (RVA) past the stub's sections and image
}

func readStub(path string, ar arch) (stubLayout, error) {
	var l stubLayout
	f, err := pe.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return l, fmt.Errorf("uki: EFI stub %s is missing: install systemd-boot-efi", path)
		}
		return l, fmt.Errorf("uki: EFI stub %s: not a PE image: %w", path, unwrap(err))
	}
	defer f.Close()
	if f.Machine != ar.machine {
		return l, fmt.Errorf("uki: EFI stub %s is not an %s PE image (machine %#x)", path, ar.name, f.Machine)
	}
	oh, ok := f.OptionalHeader.(*pe.OptionalHeader64)
	if !ok {
		return l, fmt.Errorf("uki: EFI stub %s is not a PE32+ image", path)
	}
	if oh.Subsystem != pe.IMAGE_SUBSYSTEM_EFI_APPLICATION {
		return l, fmt.Errorf("uki: EFI stub %s is not an EFI application (subsystem %d)", path, oh.Subsystem)
	}
	for _, s := range f.Sections {
		if s.Name == ".linux" || s.Name == ".initrd" {
			return l, fmt.Errorf("uki: EFI stub %s already holds a %s section: give the bare stub (linuxx64.efi.stub)", path, s.Name)
		}
		l.end = max(l.end, uint64(s.VirtualAddress)+uint64(max(s.VirtualSize, s.Size)))
	}
	l.end = max(l.end, uint64(oh.SizeOfImage))
	l.imageBase = oh.ImageBase
	l.align = max(uint64(oh.SectionAlignment), sectionAlign)
	if l.align&(l.align-1) != 0 {
		return l, fmt.Errorf("uki: EFI stub %s has a section alignment %#x that is not a power of two", path, oh.SectionAlignment)
	}
	return l, nil
}

func optional(f *pe.File) (imageBase uint64, ok bool) {
	switch oh := f.OptionalHeader.(type) {
	case *pe.OptionalHeader64:
		return oh.ImageBase, true
	case *pe.OptionalHeader32:
		return uint64(oh.ImageBase), true
	}
	return 0, false
}

// kernelVersion checks that path is an x86-64 bzImage with the EFI stub (a PE image with
// the boot protocol's setup header), or for arm64 an EFI-stub Image (a PE image with
// the arm64 boot header's magic), and returns the kernel's version.
func kernelVersion(path string, ar arch) (string, error) {
	if path == "" {
		return "", errors.New("uki: no kernel given")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("uki: kernel: %w", err)
	}
	bad := func(why string) error {
		return fmt.Errorf("uki: kernel %s is not an EFI-stub bzImage (%s): give the vmlinuz", path, why)
	}
	if bytes.HasPrefix(b, []byte("\x7fELF")) {
		return "", bad("it is an ELF vmlinux")
	}
	if ar.name == "arm64" {
		return armKernelVersion(path, b)
	}
	if len(b) < 0x210 || string(b[0x202:0x206]) != "HdrS" {
		return "", bad("no Linux boot setup header")
	}
	f, err := pe.NewFile(bytes.NewReader(b))
	if err != nil {
		return "", bad("no PE header: " + err.Error())
	}
	defer f.Close()
	if f.Machine != pe.IMAGE_FILE_MACHINE_AMD64 {
		return "", bad(fmt.Sprintf("PE machine %#x, not x86-64", f.Machine))
	}
	// kernel_version (boot protocol 2.00+): offset-0x200 of a NUL-terminated string.
	v := int(binary.LittleEndian.Uint16(b[0x20e:])) + 0x200
	if v <= 0x200 || v >= len(b) {
		return "", bad("no version string")
	}
	s := b[v:]
	if i := bytes.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	release, _, _ := strings.Cut(string(s), " ")
	if release == "" {
		return "", bad("empty version string")
	}
	return release, nil
}

// armKernelVersion checks an arm64 Image (the boot header's "ARM\x64" magic at 0x38, a PE
// header for the EFI stub) and finds its version in the banner the kernel prints
// ("Linux version 6.1.0-56-arm64 ..."), as the arm64 header names none.
func armKernelVersion(path string, b []byte) (string, error) {
	bad := func(why string) error {
		return fmt.Errorf("uki: kernel %s is not an arm64 EFI-stub Image (%s): give the vmlinuz", path, why)
	}
	if len(b) < 0x40 || string(b[0x38:0x3c]) != "ARM\x64" {
		return "", bad("no arm64 boot header")
	}
	f, err := pe.NewFile(bytes.NewReader(b))
	if err != nil {
		return "", bad("no PE header: " + err.Error())
	}
	defer f.Close()
	if f.Machine != pe.IMAGE_FILE_MACHINE_ARM64 {
		return "", bad(fmt.Sprintf("PE machine %#x, not arm64", f.Machine))
	}
	const banner = "Linux version "
	i := bytes.Index(b, []byte(banner))
	if i < 0 {
		return "", bad("no version banner (a compressed Image?)")
	}
	s := b[i+len(banner):]
	if j := bytes.IndexAny(s, " \x00"); j >= 0 {
		s = s[:j]
	}
	if len(s) == 0 || len(s) > 64 {
		return "", bad("no version in its banner")
	}
	return string(s), nil
}

// plainKey writes the signing key, decrypted, to a 0600 file in the private directory
// tmp and checks that it is the certificate's.
func plainKey(ctx context.Context, openssl, tmp, keyFile, certFile, pass string) (string, error) {
	pemKey, err := os.ReadFile(keyFile)
	if err != nil {
		return "", fmt.Errorf("uki: signing key: %w", err)
	}
	blk, _ := pem.Decode(pemKey)
	if blk == nil || !strings.HasSuffix(blk.Type, "PRIVATE KEY") {
		return "", fmt.Errorf("uki: signing key %s is not a PEM private key", keyFile)
	}
	encrypted := blk.Type == "ENCRYPTED PRIVATE KEY" || blk.Headers["Proc-Type"] == "4,ENCRYPTED"
	if encrypted && pass == "" {
		return "", fmt.Errorf("uki: signing key %s %w", keyFile, ErrNeedPassphrase)
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return "", fmt.Errorf("uki: signing certificate: %w", err)
	}
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return "", fmt.Errorf("uki: signing certificate %s is not a PEM certificate (a DER one converts with openssl x509 -inform der -in FILE -out FILE.pem)", certFile)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return "", fmt.Errorf("uki: signing certificate %s: %w", certFile, err)
	}
	out := filepath.Join(tmp, "sign.key")
	fd, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	fd.Close()
	// The passphrase goes on openssl's standard input, not on its command line.
	err = runTool(ctx, strings.NewReader(pass+"\n"), openssl, "pkey", "-in", keyFile, "-passin", "stdin", "-out", out)
	if err != nil {
		os.Remove(out)
		if encrypted {
			return "", fmt.Errorf("uki: cannot decrypt signing key %s (wrong passphrase?): %w", keyFile, err)
		}
		return "", fmt.Errorf("uki: signing key %s: %w", keyFile, err)
	}
	plain, err := os.ReadFile(out)
	if err == nil {
		err = matches(plain, cert)
	}
	if err != nil {
		os.Remove(out)
		return "", fmt.Errorf("uki: signing key %s and certificate %s: %w", keyFile, certFile, err)
	}
	return out, nil
}

func matches(plain []byte, cert *x509.Certificate) error {
	blk, _ := pem.Decode(plain)
	if blk == nil {
		return errors.New("openssl wrote no PEM key")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return err
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return errors.New("not a signing key")
	}
	pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return errors.New("the key is not the certificate's (they do not match)")
	}
	return nil
}

// CheckTools says which tool a UKI for arch (signed, or not) needs and is missing, so a
// caller with slow work before Build (nowhere bootdisk builds an initramfs) fails first.
func CheckTools(arch string, signed bool) error {
	ar, err := archOf(arch)
	if err != nil {
		return err
	}
	_, err = findTools(ar, signed)
	return err
}

// findTools finds objcopy for ar and, to sign, sbsign, sbverify and openssl ("" when not
// signing), in that order.
func findTools(ar arch, signed bool) ([4]string, error) {
	var t [4]string
	var err error
	if t[0], err = tool(ar.objcopy, ar.binutil); err != nil || !signed {
		return t, err
	}
	for i, n := range [][2]string{{"sbsign", "sbsigntool"}, {"sbverify", "sbsigntool"}, {"openssl", "openssl"}} {
		if t[i+1], err = tool(n[0], n[1]); err != nil {
			return t, err
		}
	}
	return t, nil
}

func tool(name, pkg string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("uki: %s not found: install %s", name, pkg)
	}
	return p, nil
}

// runTool runs a tool; a failure carries the last line it printed.
func runTool(ctx context.Context, stdin io.Reader, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = stdin
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		msg := strings.TrimSpace(out.String())
		if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
			msg = strings.TrimSpace(msg[i+1:])
		}
		if msg == "" {
			msg = err.Error()
		}
		if base := filepath.Base(name); !strings.HasPrefix(msg, base+":") {
			msg = base + ": " + msg
		}
		return errors.New(msg)
	}
	return nil
}

// tempNear returns a fresh, empty file name in dir for a file to be renamed to target.
func tempNear(dir, target string) (string, error) {
	f, err := os.CreateTemp(dir, "."+filepath.Base(target)+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("uki: output directory %s: %w", dir, unwrap(err))
	}
	name := f.Name()
	f.Close()
	return name, nil
}

func alignUp(v, a uint64) uint64 { return (v + a - 1) &^ (a - 1) }

func unwrap(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
