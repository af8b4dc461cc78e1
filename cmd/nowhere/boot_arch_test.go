package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBootArch: the machine's architecture is --arch, else the kernel's (an arm64 Image
// by its boot header's magic, a bzImage by HdrS), else amd64; a kernel of the other
// architecture than --arch says is refused in one line naming both.
func TestBootArch(t *testing.T) {
	dir := t.TempDir()
	arm, x86, junk := filepath.Join(dir, "Image"), filepath.Join(dir, "bzImage"), filepath.Join(dir, "junk")
	a := make([]byte, 0x210)
	copy(a[0x38:], "ARM\x64")
	b := make([]byte, 0x210)
	copy(b[0x202:], "HdrS")
	os.WriteFile(arm, a, 0o644)
	os.WriteFile(x86, b, 0o644)
	os.WriteFile(junk, []byte("not a kernel"), 0o644)
	for _, c := range []struct{ want, kernel, got, err string }{
		{"", "", "amd64", ""},
		{"arm64", "", "arm64", ""},
		{"", arm, "arm64", ""},
		{"", x86, "amd64", ""},
		{"arm64", arm, "arm64", ""},
		{"", junk, "amd64", ""}, // left to the verb's own kernel check
		{"amd64", arm, "", "is an arm64 kernel, not amd64"},
		{"arm64", x86, "", "is an amd64 kernel, not arm64"},
		{"riscv64", "", "", "--arch riscv64: want amd64 or arm64"},
	} {
		got, err := bootArch(c.want, c.kernel)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || strings.Contains(err.Error(), "\n") {
				t.Errorf("bootArch(%q, %q) = %q, %v; want the error %q", c.want, c.kernel, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.got {
			t.Errorf("bootArch(%q, %q) = %q, %v; want %q", c.want, c.kernel, got, err, c.got)
		}
	}
}
