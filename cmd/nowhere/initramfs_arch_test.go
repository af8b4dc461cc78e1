package main

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func fakeArm64Image() []byte {
	b := make([]byte, 4096)
	copy(b, "MZ")
	copy(b[56:], "ARM\x64")
	return b
}

func fakeBzImage() []byte {
	b := make([]byte, 4096)
	copy(b[0x202:], "HdrS")
	return b
}

// TestKernelArch: the arm64 Image header, the bzImage header and an ELF's e_machine.
func TestKernelArch(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		file, want string
	}{
		{writeFile(t, "Image", fakeArm64Image()), "arm64"},
		{writeFile(t, "bzImage", fakeBzImage()), "amd64"},
		{exe, runtime.GOARCH},
		{writeFile(t, "junk", []byte("hello")), ""},
	} {
		got, err := kernelArch(c.file)
		if err != nil || got != c.want {
			t.Errorf("kernelArch(%s) = %q, %v; want %q", c.file, got, err, c.want)
		}
	}
}

func TestModulesArch(t *testing.T) {
	for dir, want := range map[string]string{
		"/lib/modules/6.1.0-57-arm64":          "arm64",
		".cache/kernel/6.1.0-57-amd64/modules": "amd64",
		"/lib/modules/6.1.0-57-cloud-amd64/":   "amd64",
		"/lib/modules/6.12.0-rc1":              "",
	} {
		if got := modulesArch(dir); got != want {
			t.Errorf("modulesArch(%s) = %q, want %q", dir, got, want)
		}
	}
}

// TestInitBinaryRefusesAMismatch: a --binary for this machine with a kernel of the other
// architecture is refused with one line naming both.
func TestInitBinaryRefusesAMismatch(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	other, kernel := "arm64", writeFile(t, "Image", fakeArm64Image())
	if runtime.GOARCH == "arm64" {
		other, kernel = "amd64", writeFile(t, "bzImage", fakeBzImage())
	}
	_, err = initBinary(initramfsOptions{binary: exe, kernel: kernel})
	if err == nil || !strings.Contains(err.Error(), runtime.GOARCH) || !strings.Contains(err.Error(), other) || strings.Contains(err.Error(), "\n") {
		t.Errorf("mismatch: %v; want one line naming %s and %s", err, runtime.GOARCH, other)
	}
	if _, err := initBinary(initramfsOptions{binary: exe, arch: other}); err == nil {
		t.Errorf("--arch %s with a %s --binary: accepted", other, runtime.GOARCH)
	}
	if got, err := initBinary(initramfsOptions{binary: exe, arch: runtime.GOARCH}); err != nil || got != exe {
		t.Errorf("matching --binary: %q, %v", got, err)
	}
	if _, err := initBinary(initramfsOptions{arch: "riscv64"}); err == nil {
		t.Error("--arch riscv64 accepted")
	}
}

// TestInitBinaryPicksThisOrTheSibling: this executable when the architecture matches,
// else nowhere-ARCH next to it, which must exist.
func TestInitBinaryPicksThisOrTheSibling(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := initBinary(initramfsOptions{modules: "/lib/modules/6.1.0-57-" + runtime.GOARCH}); err != nil || got != exe {
		t.Errorf("matching modules: %q, %v; want %s", got, err, exe)
	}
	if got, err := initBinary(initramfsOptions{}); err != nil || got != exe {
		t.Errorf("nothing given: %q, %v; want %s", got, err, exe)
	}
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	got, err := initBinary(initramfsOptions{arch: other})
	sibling := filepath.Join(filepath.Dir(exe), "nowhere-"+other)
	if _, serr := os.Stat(sibling); serr != nil {
		if err == nil || !strings.Contains(err.Error(), "nowhere-"+other) {
			t.Errorf("no sibling: %q, %v; want an error naming nowhere-%s", got, err, other)
		}
	} else if err != nil || got != sibling {
		t.Errorf("sibling: %q, %v", got, err)
	}
}
