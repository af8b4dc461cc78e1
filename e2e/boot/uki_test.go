package boot

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/boot/vm"
	"github.com/nowhere-boot/nowhere/internal/uki"
)

// Debian's test key pair (package ovmf): OVMF_VARS_4M.snakeoil.fd has its certificate
// enrolled, so firmware vm.Snakeoil runs what it signed and nothing else.
const (
	snakeoilKey  = "/usr/share/ovmf/PkKek-1-snakeoil.key" // encrypted; passphrase "snakeoil"
	snakeoilCert = "/usr/share/ovmf/PkKek-1-snakeoil.pem"
)

// refused is what OVMF prints when Secure Boot refuses the image of a boot option.
var refused = regexp.MustCompile(`BdsDxe: failed to load Boot[0-9A-F]{4} "[^"]*" from \S+: Access Denied`)

// TestUKI boots a PC with Secure Boot enforced (OVMF, the snakeoil key enrolled in db)
// from a disk whose EFI system partition holds only a unified kernel image, built and
// signed by nowhere uki: the Debian kernel, the nowhere initramfs with the publisher's
// key baked in and the command line, one signature over all of them. The firmware checks
// it, the kernel says Secure Boot is on, and the busybox root streamed over HTTP runs.
// The same UKI with one byte of its initramfs changed is refused by the firmware: no
// kernel starts; and so is the intact UKI by firmware that does not trust the snakeoil
// key (OVMF with Microsoft's keys).
func TestUKI(t *testing.T) {
	needEnv(t)
	s := packAndServe(t, makeFS(t, busyboxRoot(t), "squashfs"), "bb-uki")
	dir := t.TempDir()
	initrd := filepath.Join(dir, "initrd.img")
	run(t, env.bin, "initramfs", "-o", initrd, "--modules", env.modules, "--key", env.public)
	pass := filepath.Join(dir, "snakeoil.pass")
	if err := os.WriteFile(pass, []byte("snakeoil\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	efi := filepath.Join(dir, "nowhere.efi")
	cmdline := "console=ttyS0 panic=-1 loglevel=4 nowhere.image=" + vm.GuestURL + "/images/" + s.name
	t.Log(strings.TrimSpace(run(t, env.bin, "uki", "-o", efi, "--kernel", filepath.Join(filepath.Dir(env.kernel), "vmlinuz"),
		"--initrd", initrd, "--cmdline", cmdline, "--sign-key", snakeoilKey, "--sign-cert", snakeoilCert, "--sign-pass-file", pass)))
	st, err := os.Stat(efi)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("UKI: %d bytes", st.Size())

	t.Run("signed", func(t *testing.T) {
		// The kernel's EFI stub reads the firmware's SecureBoot variable and says so. (The
		// kernel's own "secureboot: Secure boot enabled" is an info message: loglevel=4
		// keeps it off the console.)
		r := firmwareBoot(t, s, vm.Snakeoil, makeESP(t, efi), 6*time.Minute, nil, "EFI stub: UEFI Secure Boot is enabled", "E2E-MARK-OK")
		if err := r.err; err != nil || !r.PoweredOff {
			t.Fatalf("VM: err=%v powered-off=%v; console:\n%s", err, r.PoweredOff, tail(r.Console, 120))
		}
		for _, m := range []string{"EFI stub: UEFI Secure Boot is enabled", "E2E-MARK-OK"} {
			if _, ok := r.Matches[m]; !ok {
				t.Errorf("the console never showed %q:\n%s", m, tail(r.Console, 80))
			}
		}
		// The image to boot came from the UKI's command line: the initramfs has no baked
		// defaults (loglevel=4 keeps the kernel's own "Command line:" off the console).
		if got := line(r.Console, "nowhere: image "); !strings.HasPrefix(got, vm.GuestURL+"/images/"+s.name+",") {
			t.Errorf("/init's image line %q: want the image the UKI's command line names", got)
		}
		checkGuest(t, r.Result, s, guest{format: "squashfs", ip: "dhcp"})
		if got := line(r.Console, "nowhere: trusting publisher keys"); got == "" {
			t.Errorf("/init did not say it trusts the key baked into the signed initramfs:\n%s", tail(r.Console, 60))
		}
		t.Logf("power-on to E2E-MARK-OK: %.1f s (Secure Boot enabled at %.1f s); UKI %d bytes",
			r.Matches["E2E-MARK-OK"].Seconds(), r.Matches["EFI stub: UEFI Secure Boot is enabled"].Seconds(), st.Size())
	})

	t.Run("tampered", func(t *testing.T) {
		// One byte of the initramfs section changed: the signature no longer matches.
		b, err := os.ReadFile(efi)
		if err != nil {
			t.Fatal(err)
		}
		secs, err := uki.Sections(efi)
		if err != nil {
			t.Fatal(err)
		}
		changed := false
		for _, sec := range secs {
			if sec.Name == ".initrd" {
				b[sec.Offset+sec.Size/2] ^= 0x01
				changed = true
			}
		}
		if !changed {
			t.Fatalf("the UKI has no .initrd section: %+v", secs)
		}
		bad := filepath.Join(t.TempDir(), "tampered.efi")
		if err := os.WriteFile(bad, b, 0o644); err != nil {
			t.Fatal(err)
		}
		// The firmware refuses it and goes on to its next boot options (the network, which
		// has no boot server): the test stops the VM once the refusal is on the console.
		before := s.counts()
		r := firmwareBoot(t, s, vm.Snakeoil, makeESP(t, bad), 4*time.Minute, refused, refused.String())
		if _, ok := r.Matches[refused.String()]; !ok {
			t.Fatalf("the firmware did not refuse the tampered UKI (want %q); console:\n%s", refused, tail(r.Console, 80))
		}
		t.Logf("refused after %.1f s: %s", r.Matches[refused.String()].Seconds(), refused.FindString(r.Console))
		for _, started := range []string{"EFI stub:", "Linux version", "E2E-MARK"} {
			if strings.Contains(r.Console, started) {
				t.Errorf("the console shows %q: a kernel started from the tampered UKI:\n%s", started, tail(r.Console, 60))
			}
		}
		if after := s.counts(); after.Requests != before.Requests {
			t.Errorf("the store was asked %d requests during the tampered boot: want none", after.Requests-before.Requests)
		}
	})

	t.Run("untrusted key", func(t *testing.T) {
		// Intact, but signed by a key this firmware's db does not hold.
		r := firmwareBoot(t, s, vm.SecureBoot, makeESP(t, efi), 4*time.Minute, refused, refused.String())
		if _, ok := r.Matches[refused.String()]; !ok {
			t.Fatalf("firmware with Microsoft's keys did not refuse the snakeoil-signed UKI (want %q); console:\n%s", refused, tail(r.Console, 80))
		}
		t.Logf("refused after %.1f s: %s", r.Matches[refused.String()].Seconds(), refused.FindString(r.Console))
		if strings.Contains(r.Console, "EFI stub:") || strings.Contains(r.Console, "Linux version") {
			t.Errorf("a kernel started from a UKI signed with an untrusted key:\n%s", tail(r.Console, 60))
		}
	})
}

type firmwareResult struct {
	vm.Result
	err error
}

// firmwareBoot boots a PC with firmware fw from the disk esp,
// with the guest's 10.0.2.100 relayed to s; it stops the VM once the console shows stop
// (nil: it runs until it powers off or timeout).
func firmwareBoot(t *testing.T, s *served, fw vm.Firmware, esp string, timeout time.Duration, stop *regexp.Regexp, expect ...string) firmwareResult {
	t.Helper()
	var res []*regexp.Regexp
	for _, e := range expect {
		res = append(res, regexp.MustCompile(e))
	}
	log := consoleLog(t)
	defer log.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	r, err := vm.Run(ctx, vm.Config{
		Firmware: fw, Disks: []string{esp}, Memory: 512, CPUs: 1, Accel: "auto",
		Relay:   []string{env.bin, "vm", "relay", s.addr},
		Console: log,
		Expect:  res,
		OnMatch: func(re *regexp.Regexp, _ time.Duration) {
			if stop != nil && re.String() == stop.String() {
				cancel()
			}
		},
	})
	t.Logf("VM ran %.1f s (accel %s); marks %v; served %+v", time.Since(start).Seconds(), r.Accel, r.Matches, s.counts())
	return firmwareResult{r, err}
}

// makeESP makes an EFI system partition image (FAT, no partition table: OVMF boots a
// bare FAT disk) holding efi as EFI/BOOT/BOOTX64.EFI, the removable-media boot path.
func makeESP(t *testing.T, efi string) string {
	t.Helper()
	st, err := os.Stat(efi)
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "esp.img")
	kib := st.Size()/1024*11/10 + 8192 // the file, FAT's tables and some slack
	run(t, "mkfs.vfat", "-C", img, fmt.Sprint(kib))
	run(t, "mmd", "-i", img, "::/EFI", "::/EFI/BOOT")
	run(t, "mcopy", "-i", img, efi, "::/EFI/BOOT/BOOTX64.EFI")
	return img
}
