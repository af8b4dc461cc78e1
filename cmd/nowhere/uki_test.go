package main

import (
	"context"
	"github.com/nowhere-boot/nowhere/internal/testutil"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestUKICommand builds a signed UKI with nowhere uki, the snakeoil key's passphrase in a
// file, and checks that sbverify accepts it; a command line that nowhere's boot would
// refuse fails before anything is written.
func TestUKICommand(t *testing.T) {
	m, _ := filepath.Glob("../../.cache/kernel/*-amd64/vmlinuz")
	if len(m) == 0 {
		testutil.Missing(t, "no cached kernel: run scripts/fetch-kernel.sh (make test does)")
	}
	for _, tool := range []string{"objcopy", "sbsign", "sbverify", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed (scripts/install-deps.sh test installs it)", tool)
		}
	}
	dir := t.TempDir()
	initrd := filepath.Join(dir, "initrd.img")
	os.WriteFile(initrd, []byte("not really a cpio archive, but an initramfs section all the same"), 0o644)
	pass := filepath.Join(dir, "pass")
	os.WriteFile(pass, []byte("snakeoil\n"), 0o600)
	out := filepath.Join(dir, "BOOTX64.EFI")
	cert := "/usr/share/ovmf/PkKek-1-snakeoil.pem"
	runCmd := func(args ...string) error {
		cmd := newRootCommand()
		cmd.SetArgs(append([]string{"uki"}, args...))
		return cmd.ExecuteContext(context.Background())
	}
	err := runCmd("-o", out, "--kernel", m[0], "--initrd", initrd, "--cmdline", "console=ttyS0 nowhere.image=http://10.0.2.100/images/x",
		"--sign-key", "/usr/share/ovmf/PkKek-1-snakeoil.key", "--sign-cert", cert, "--sign-pass-file", pass)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("sbverify", "--cert", cert, out).CombinedOutput(); err != nil {
		t.Errorf("sbverify: %v\n%s", err, b)
	}
	bad := filepath.Join(dir, "bad.efi")
	err = runCmd("-o", bad, "--kernel", m[0], "--initrd", initrd, "--cmdline", "console=ttyS0 nowhere.ip=10.0.2.15")
	if err == nil || !strings.Contains(err.Error(), "nowhere.ip") {
		t.Errorf("a bad nowhere.ip=: %v, want a refusal naming it", err)
	}
	if _, err := os.Stat(bad); err == nil {
		t.Errorf("a refused command line left %s", bad)
	}
	err = runCmd("-o", bad, "--kernel", m[0], "--initrd", initrd, "--sign-key", "/usr/share/ovmf/PkKek-1-snakeoil.key")
	if err == nil || !strings.Contains(err.Error(), "--sign-cert") {
		t.Errorf("--sign-key alone: %v", err)
	}
}
