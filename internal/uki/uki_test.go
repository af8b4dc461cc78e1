package uki

import (
	"bytes"
	"context"
	"crypto/rand"
	"debug/pe"
	"github.com/nowhere-boot/nowhere/internal/testutil"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The snakeoil key pair of Debian's ovmf package: OVMF_VARS_4M.snakeoil.fd trusts it.
const (
	snakeoilKey  = "/usr/share/ovmf/PkKek-1-snakeoil.key" // encrypted, passphrase "snakeoil"
	snakeoilCert = "/usr/share/ovmf/PkKek-1-snakeoil.pem"
)

// kernel returns the Debian kernel scripts/fetch-kernel.sh cached (an EFI-stub bzImage)
// and its ELF vmlinux.
func kernel(t *testing.T) (vmlinuz, vmlinux string) {
	t.Helper()
	m, _ := filepath.Glob("../../.cache/kernel/*-amd64/vmlinuz")
	if len(m) == 0 {
		testutil.Missing(t, "no cached kernel: run scripts/fetch-kernel.sh (make test does)")
	}
	return m[0], filepath.Join(filepath.Dir(m[0]), "vmlinux")
}

func needTools(t *testing.T) {
	t.Helper()
	for tool, pkg := range map[string]string{"objcopy": "binutils", "sbsign": "sbsigntool", "sbverify": "sbsigntool", "openssl": "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed (apt-get install %s; scripts/install-deps.sh test does)", tool, pkg)
		}
	}
	for _, f := range []string{DefaultStub, snakeoilKey, snakeoilCert} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("%v (apt-get install systemd-boot-efi ovmf)", err)
		}
	}
}

func randomFile(t *testing.T, dir, name string, n int) string {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// newCert makes a self-signed certificate and its (unencrypted) key.
func newCert(t *testing.T, dir, name string) (key, cert string) {
	t.Helper()
	key, cert = filepath.Join(dir, name+".key"), filepath.Join(dir, name+".pem")
	out, err := exec.Command("openssl", "req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
		"-subj", "/CN="+name, "-keyout", key, "-out", cert).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl req: %v\n%s", err, out)
	}
	return key, cert
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// sectionData reads every section's content (VirtualSize bytes) back with debug/pe.
func sectionData(t *testing.T, path string) (map[string][]byte, []*pe.Section, uint32) {
	t.Helper()
	f, err := pe.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := map[string][]byte{}
	for _, s := range f.Sections {
		b := make([]byte, s.VirtualSize)
		if _, err := s.ReadAt(b, 0); err != nil && s.VirtualSize <= s.Size {
			t.Fatalf("section %s: %v", s.Name, err)
		}
		got[s.Name] = b
	}
	return got, f.Sections, f.OptionalHeader.(*pe.OptionalHeader64).SizeOfImage
}

// checkLayout checks that no two sections' address ranges overlap, that the added ones
// are 4 KiB aligned and follow the stub's, and that the image's size covers them.
func checkLayout(t *testing.T, secs []*pe.Section, sizeOfImage uint32) {
	t.Helper()
	s := slices.Clone(secs)
	slices.SortFunc(s, func(a, b *pe.Section) int { return int(a.VirtualAddress) - int(b.VirtualAddress) })
	for i := 1; i < len(s); i++ {
		prev, cur := s[i-1], s[i]
		if end := prev.VirtualAddress + max(prev.VirtualSize, 1); end > cur.VirtualAddress {
			t.Errorf("section %s [%#x, %#x) overlaps %s at %#x", prev.Name, prev.VirtualAddress, end, cur.Name, cur.VirtualAddress)
		}
	}
	added := map[string]bool{".osrel": true, ".cmdline": true, ".uname": true, ".linux": true, ".initrd": true}
	var n int
	for _, x := range s {
		if added[x.Name] {
			n++
			if x.VirtualAddress%4096 != 0 {
				t.Errorf("section %s at %#x is not 4 KiB aligned", x.Name, x.VirtualAddress)
			}
		} else if n > 0 {
			t.Errorf("stub section %s at %#x comes after the added ones", x.Name, x.VirtualAddress)
		}
	}
	if n != len(added) {
		t.Errorf("%d of the %d sections added", n, len(added))
	}
	last := s[len(s)-1]
	if last.VirtualAddress+last.VirtualSize > sizeOfImage {
		t.Errorf("SizeOfImage %#x does not cover %s, which ends at %#x", sizeOfImage, last.Name, last.VirtualAddress+last.VirtualSize)
	}
}

func sbverify(cert, file string) error {
	return exec.Command("sbverify", "--cert", cert, file).Run()
}

// TestBuildSigned builds a UKI of the real kernel, signed with the snakeoil key (an
// encrypted PEM key), and reads every part back.
func TestBuildSigned(t *testing.T) {
	needTools(t)
	vmlinuz, _ := kernel(t)
	dir := t.TempDir()
	initrd := randomFile(t, dir, "initrd.img", 300_000)
	out := filepath.Join(dir, "out", "uki.efi")
	os.Mkdir(filepath.Dir(out), 0o755)
	cmdline := "console=ttyS0 panic=-1 nowhere.image=http://10.0.2.100/images/debian"
	err := Build(ctx(t), Options{Output: out, Kernel: vmlinuz, Initrd: initrd, Cmdline: cmdline,
		SignKey: snakeoilKey, SignCert: snakeoilCert, Passphrase: "snakeoil"})
	if err != nil {
		t.Fatal(err)
	}
	got, secs, sizeOfImage := sectionData(t, out)
	want := map[string][]byte{".cmdline": []byte(cmdline)}
	for name, file := range map[string]string{".linux": vmlinuz, ".initrd": initrd} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		want[name] = b
	}
	for name, w := range want {
		if !bytes.Equal(got[name], w) {
			t.Errorf("section %s: %d bytes read back differ from the %d given", name, len(got[name]), len(w))
		}
	}
	if u := string(got[".uname"]); !strings.HasPrefix(u, "6.") || !strings.Contains(vmlinuz, u) {
		t.Errorf(".uname %q: want the version of %s", u, vmlinuz)
	}
	if o := string(got[".osrel"]); !strings.Contains(o, "ID=nowhere\n") || !strings.Contains(o, string(got[".uname"])) {
		t.Errorf(".osrel does not name nowhere and the kernel:\n%s", o)
	}
	checkLayout(t, secs, sizeOfImage)

	if err := sbverify(snakeoilCert, out); err != nil {
		t.Errorf("sbverify --cert %s: %v", snakeoilCert, err)
	}
	_, other := newCert(t, dir, "other")
	if err := sbverify(other, out); err == nil {
		t.Errorf("sbverify with another certificate accepted the UKI")
	}
	// One byte changed in the initramfs: the signature no longer verifies.
	b, _ := os.ReadFile(out)
	for _, s := range secs {
		if s.Name == ".initrd" {
			b[s.Offset+s.VirtualSize/2] ^= 1
		}
	}
	bad := filepath.Join(dir, "bad.efi")
	os.WriteFile(bad, b, 0o644)
	if err := sbverify(snakeoilCert, bad); err == nil {
		t.Errorf("sbverify accepted the UKI with a byte of its initramfs changed")
	}
	// Only the UKI is left where it was written.
	if names := dirNames(t, filepath.Dir(out)); !slices.Equal(names, []string{"uki.efi"}) {
		t.Errorf("output directory holds %v, want just uki.efi", names)
	}
}

// TestBuildSizes builds unsigned UKIs with initramfs sizes from 1 byte to larger than the
// kernel: the sections move to fit.
func TestBuildSizes(t *testing.T) {
	needTools(t)
	vmlinuz, _ := kernel(t)
	dir := t.TempDir()
	var prev uint32
	for _, n := range []int{1, 4096, 20 << 20} {
		initrd := randomFile(t, dir, "initrd.img", n)
		out := filepath.Join(dir, "uki.efi")
		if err := Build(ctx(t), Options{Output: out, Kernel: vmlinuz, Initrd: initrd, Cmdline: ""}); err != nil {
			t.Fatalf("initramfs of %d bytes: %v", n, err)
		}
		got, secs, sizeOfImage := sectionData(t, out)
		want, _ := os.ReadFile(initrd)
		if !bytes.Equal(got[".initrd"], want) {
			t.Errorf("initramfs of %d bytes: .initrd holds %d bytes that differ", n, len(got[".initrd"]))
		}
		if string(got[".cmdline"]) != " " {
			t.Errorf("empty command line: .cmdline holds %q, want one space", got[".cmdline"])
		}
		checkLayout(t, secs, sizeOfImage)
		if sizeOfImage <= prev {
			t.Errorf("initramfs of %d bytes: SizeOfImage %#x did not grow from %#x", n, sizeOfImage, prev)
		}
		prev = sizeOfImage
		if err := sbverify(snakeoilCert, out); err == nil {
			t.Errorf("an unsigned UKI verified")
		}
	}
}

// TestBuildErrors checks that each bad input fails with one line naming it, and that a
// failed build leaves no file behind and an existing output as it was.
func TestBuildErrors(t *testing.T) {
	needTools(t)
	vmlinuz, vmlinux := kernel(t)
	dir := t.TempDir()
	initrd := randomFile(t, dir, "initrd.img", 1000)
	junk := randomFile(t, dir, "junk", 100_000)
	otherKey, otherCert := newCert(t, dir, "other")
	// A PATH with objcopy and openssl but no sbsign.
	nosb := filepath.Join(dir, "bin")
	os.Mkdir(nosb, 0o755)
	for _, tool := range []string{"objcopy", "openssl"} {
		p, _ := exec.LookPath(tool)
		os.Symlink(p, filepath.Join(nosb, tool))
	}
	outDir := filepath.Join(dir, "out")
	os.Mkdir(outDir, 0o755)
	out := filepath.Join(outDir, "uki.efi")
	os.WriteFile(out, []byte("the previous UKI"), 0o644)

	good := Options{Output: out, Kernel: vmlinuz, Initrd: initrd, Cmdline: "console=ttyS0",
		SignKey: snakeoilKey, SignCert: snakeoilCert, Passphrase: "snakeoil"}
	for _, c := range []struct {
		name string
		edit func(o *Options)
		path string // PATH for the build ("": as it is)
		want string
	}{
		{"missing kernel", func(o *Options) { o.Kernel = filepath.Join(dir, "nope") }, "", "uki: kernel: open " + filepath.Join(dir, "nope")},
		{"ELF kernel", func(o *Options) { o.Kernel = vmlinux }, "", "is not an EFI-stub bzImage (it is an ELF vmlinux)"},
		{"junk kernel", func(o *Options) { o.Kernel = junk }, "", "kernel " + junk + " is not an EFI-stub bzImage"},
		{"missing initramfs", func(o *Options) { o.Initrd = filepath.Join(dir, "nope") }, "", "uki: initramfs: "},
		{"missing stub", func(o *Options) { o.Stub = filepath.Join(dir, "nope.stub") }, "", "nope.stub is missing: install systemd-boot-efi"},
		{"stub not PE", func(o *Options) { o.Stub = junk }, "", "EFI stub " + junk + ": not a PE image"},
		{"no sbsign", func(o *Options) {}, nosb, "sbsign not found: install sbsigntool"},
		{"key and cert mismatch", func(o *Options) { o.SignCert = otherCert }, "", "do not match"},
		{"key without cert", func(o *Options) { o.SignCert = "" }, "", "needs both a key and a certificate"},
		{"wrong passphrase", func(o *Options) { o.Passphrase = "oilsnake" }, "", "cannot decrypt signing key"},
		{"no passphrase", func(o *Options) { o.Passphrase = "" }, "", "is encrypted: give its passphrase"},
		{"cert not PEM", func(o *Options) { o.SignKey, o.SignCert = otherKey, junk }, "", "is not a PEM certificate"},
		{"newline in cmdline", func(o *Options) { o.Cmdline = "console=ttyS0\ninit=/bin/sh" }, "", "holds a newline or NUL"},
		{"NUL in cmdline", func(o *Options) { o.Cmdline = "console=ttyS0\x00" }, "", "holds a newline or NUL"},
		{"missing output directory", func(o *Options) { o.Output = filepath.Join(dir, "nodir", "uki.efi") }, "", "output directory " + filepath.Join(dir, "nodir")},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := good
			c.edit(&o)
			if c.path != "" {
				t.Setenv("PATH", c.path)
			}
			err := Build(ctx(t), o)
			if err == nil {
				t.Fatalf("built")
			}
			if msg := err.Error(); !strings.Contains(msg, c.want) || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line with %q", msg, c.want)
			}
			if b, _ := os.ReadFile(out); string(b) != "the previous UKI" {
				t.Errorf("the existing output was changed")
			}
			if names := dirNames(t, outDir); !slices.Equal(names, []string{"uki.efi"}) {
				t.Errorf("output directory holds %v after a failure, want just the old uki.efi", names)
			}
		})
	}
	// Another key pair, unencrypted, signs fine (no passphrase needed).
	o := good
	o.SignKey, o.SignCert, o.Passphrase = otherKey, otherCert, ""
	if err := Build(ctx(t), o); err != nil {
		t.Fatalf("unencrypted key: %v", err)
	}
	if err := sbverify(otherCert, out); err != nil {
		t.Errorf("signed with an unencrypted key: sbverify: %v", err)
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// TestArm64UKI builds a signed UKI from Debian's arm64 kernel and arm64 systemd-stub
// (what scripts/fetch-kernel.sh arm64 unpacks): an arm64 PE image whose .linux is the
// kernel and whose .uname is the version in the kernel's banner, which sbverify accepts;
// the x86 stub or kernel is refused for it in one line, and it needs its own stub.
func TestArm64UKI(t *testing.T) {
	needTools(t)
	m, _ := filepath.Glob("../../.cache/kernel/*-arm64/vmlinuz")
	if len(m) == 0 {
		testutil.Missing(t, "no cached arm64 kernel: run scripts/fetch-kernel.sh arm64 (make test does)")
	}
	if _, err := exec.LookPath("aarch64-linux-gnu-objcopy"); err != nil {
		t.Fatal("aarch64-linux-gnu-objcopy is not installed (apt-get install binutils-aarch64-linux-gnu; scripts/install-deps.sh test does)")
	}
	armKernel := m[0]
	stub := filepath.Join(filepath.Dir(armKernel), "x", ArmStub)
	dir := t.TempDir()
	initrd := randomFile(t, dir, "initrd.img", 3<<20)
	out := filepath.Join(dir, "BOOTAA64.EFI")
	err := Build(ctx(t), Options{Output: out, Arch: "arm64", Kernel: armKernel, Initrd: initrd, Stub: stub,
		Cmdline: "console=ttyAMA0 nowhere.image=http://10.0.2.100/images/x", SignKey: snakeoilKey, SignCert: snakeoilCert, Passphrase: "snakeoil"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := pe.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	machine := f.Machine
	f.Close()
	if machine != pe.IMAGE_FILE_MACHINE_ARM64 {
		t.Errorf("the UKI's PE machine is %#x, want arm64", machine)
	}
	got, secs, size := sectionData(t, out)
	checkLayout(t, secs, size)
	k, _ := os.ReadFile(armKernel)
	if !bytes.Equal(got[".linux"], k) {
		t.Errorf(".linux (%d bytes) is not the arm64 kernel (%d bytes)", len(got[".linux"]), len(k))
	}
	if u := strings.TrimRight(string(got[".uname"]), "\x00"); !strings.HasSuffix(u, "-arm64") {
		t.Errorf(".uname %q: want the arm64 kernel's version", u)
	}
	if o, err := exec.Command("sbverify", "--cert", snakeoilCert, out).CombinedOutput(); err != nil {
		t.Errorf("sbverify: %v\n%s", err, o)
	}
	x86Kernel, _ := kernel(t)
	for name, o := range map[string]Options{
		"x86 kernel": {Kernel: x86Kernel, Stub: stub},
		"x86 stub":   {Kernel: armKernel, Stub: DefaultStub},
		"no stub":    {Kernel: armKernel},
	} {
		o.Output, o.Arch, o.Initrd = filepath.Join(dir, "bad.efi"), "arm64", initrd
		err := Build(ctx(t), o)
		if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "arm64") {
			t.Errorf("%s: %v, want a one-line refusal naming arm64", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "bad.efi")); err == nil {
		t.Error("a refused build left its output")
	}
}
