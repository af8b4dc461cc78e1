package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBootdiskRefusesBadInput: mistakes fail at once, in one line, before anything is
// built, and leave no file behind.
func TestBootdiskRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	elf := filepath.Join(dir, "vmlinux")
	os.WriteFile(elf, append([]byte("\x7fELF"), make([]byte, 1024)...), 0o644)
	junk := filepath.Join(dir, "junk")
	os.WriteFile(junk, make([]byte, 1024), 0o644)
	out := filepath.Join(dir, "disk.img")
	ok := bootdiskOptions{output: out, kernel: elf, modules: dir, images: []string{"http://10.0.2.100/images/bb"}, timeout: 5e9}
	for name, c := range map[string]struct {
		change func(*bootdiskOptions)
		want   string
	}{
		"ELF kernel":      {func(o *bootdiskOptions) {}, "is an ELF vmlinux: boot loaders need the bzImage (vmlinuz)"},
		"not a kernel":    {func(o *bootdiskOptions) { o.kernel = junk }, "not a Linux bzImage"},
		"no kernel file":  {func(o *bootdiskOptions) { o.kernel = filepath.Join(dir, "none") }, "no such file"},
		"no image":        {func(o *bootdiskOptions) { o.images = nil }, "give at least one --image"},
		"bad image URL":   {func(o *bootdiskOptions) { o.images = []string{"http://x/a;reboot"} }, "not allowed"},
		"bad append":      {func(o *bootdiskOptions) { o.append = "quiet $x" }, "not allowed"},
		"output is a dir": {func(o *bootdiskOptions) { o.output = dir }, "is a directory"},
		"no output dir":   {func(o *bootdiskOptions) { o.output = filepath.Join(dir, "no/such/disk.img") }, "does not exist"},
		"bad mirror":      {func(o *bootdiskOptions) { o.mirrors = []string{"ftp://m"} }, "nowhere.mirror"},
	} {
		o := ok
		c.change(&o)
		err := runBootdisk(context.Background(), o)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want one line with %q", name, err, c.want)
		}
	}
	if left, _ := os.ReadDir(dir); len(left) != 2 {
		t.Errorf("refused runs left files: %v", left)
	}
}

// TestBootdiskFindsTheCachedKernel: without --kernel/--modules the kernel
// scripts/fetch-kernel.sh cached in .cache/kernel/VERSION is used, and without one the
// error says what to do.
func TestBootdiskFindsTheCachedKernel(t *testing.T) {
	t.Setenv("NOWHERE_KVER", "")
	dir := t.TempDir()
	t.Chdir(dir)
	if _, err := cachedKernel("amd64"); err == nil || !strings.Contains(err.Error(), "run scripts/fetch-kernel.sh") ||
		!strings.Contains(err.Error(), "--kernel VMLINUZ") {
		t.Errorf("no cached kernel: %v", err)
	}
	for _, v := range []string{"6.1.0-9-amd64", "6.1.0-56-amd64", "6.1.0-60-amd64"} {
		os.MkdirAll(filepath.Join(dir, ".cache/kernel", v), 0o755)
		if v != "6.1.0-60-amd64" { // not done: still being unpacked
			os.WriteFile(filepath.Join(dir, ".cache/kernel", v, "done"), nil, 0o644)
		}
	}
	got, err := cachedKernel("amd64")
	if err != nil || filepath.Base(got) != "6.1.0-56-amd64" { // the highest version done
		t.Errorf("cached kernel %q, %v", got, err)
	}
	t.Setenv("NOWHERE_KVER", "6.1.0-9-amd64")
	if got, err := cachedKernel("amd64"); err != nil || filepath.Base(got) != "6.1.0-9-amd64" {
		t.Errorf("with NOWHERE_KVER: %q, %v", got, err)
	}
}
