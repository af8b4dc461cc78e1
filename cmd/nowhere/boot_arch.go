package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/nowhere-boot/nowhere/internal/uki"
)

// bootArch is the architecture of the machine a kernel boots: the one asked for (amd64
// or arm64), else the kernel's own (kernelArch), else amd64. A kernel of another known
// architecture than the one asked for is refused in one line; one that cannot be read is
// left to the checks of the verb, which say what is wrong with it.
func bootArch(want, kernel string) (string, error) {
	if _, ok := initArches[want]; want != "" && !ok {
		return "", fmt.Errorf("--arch %s: want amd64 or arm64", want)
	}
	got := ""
	if kernel != "" {
		got, _ = kernelArch(kernel)
	}
	switch {
	case got != "" && want != "" && got != want:
		return "", fmt.Errorf("--kernel %s is an %s kernel, not %s", kernel, got, want)
	case got != "":
		return got, nil
	case want != "":
		return want, nil
	}
	return "amd64", nil
}

// archRoot is where arch's boot loaders and stubs are, at their Debian paths: "/" on a
// machine of that architecture, else the tree scripts/fetch-kernel.sh ARCH unpacked
// (.cache/kernel/VERSION/x): the one the kernel given is in, else the cached one.
func archRoot(arch, kernel string) (string, error) {
	if arch == runtime.GOARCH {
		return "/", nil
	}
	if kernel != "" {
		dir := filepath.Dir(kernel)
		if _, err := os.Stat(filepath.Join(dir, "done")); err == nil {
			if st, err := os.Stat(filepath.Join(dir, "x")); err == nil && st.IsDir() {
				return filepath.Join(dir, "x"), nil
			}
		}
	}
	kdir, err := cachedKernel(arch)
	if err != nil {
		return "", fmt.Errorf("%s boot loaders: %w", arch, err)
	}
	return filepath.Join(kdir, "x"), nil
}

// ukiStub is systemd's EFI stub for a UKI of arch: Debian's, from arch's tree.
func ukiStub(arch, kernel string) (string, error) {
	if arch != "arm64" {
		return uki.DefaultStub, nil
	}
	root, err := archRoot(arch, kernel)
	if err != nil {
		return "", err
	}
	return filepath.Join(root, uki.ArmStub), nil
}
