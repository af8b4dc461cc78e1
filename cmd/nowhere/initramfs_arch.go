package main

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// The machine architectures an initramfs can be built for, in Go's names.
var initArches = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

// kernelArch names the architecture of a kernel image: an arm64 Image ("ARM\x64" at
// offset 56, also inside an EFI-stub Image), an x86 bzImage ("HdrS" at 0x202), or an
// ELF vmlinux (its e_machine). "" when it is none of these.
func kernelArch(file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, 0x210)
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.ErrUnexpectedEOF {
		return "", fmt.Errorf("%s: %w", file, err)
	}
	head = head[:n]
	switch {
	case len(head) >= 60 && bytes.Equal(head[56:60], []byte("ARM\x64")):
		return "arm64", nil
	case len(head) >= 0x206 && bytes.Equal(head[0x202:0x206], []byte("HdrS")):
		return "amd64", nil
	case len(head) >= 4 && bytes.Equal(head[:4], []byte(elf.ELFMAG)):
		return elfFileArch(file)
	}
	return "", nil
}

// elfFileArch names the architecture of an ELF file by its e_machine ("" for one
// initramfs cannot build for).
func elfFileArch(file string) (string, error) {
	e, err := elf.Open(file)
	if err != nil {
		return "", fmt.Errorf("%s: %w", file, err)
	}
	defer e.Close()
	if a := elfArch(e.Machine); initArches[a] != 0 {
		return a, nil
	}
	return "", nil
}

// modulesArch guesses the architecture from a module directory's name, as Debian names
// them (6.1.0-57-arm64, 6.1.0-57-amd64, 6.1.0-57-cloud-amd64).
func modulesArch(dir string) string {
	base := filepath.Base(filepath.Clean(dir))
	if base == "modules" { // .cache/kernel/VERSION/modules
		base = filepath.Base(filepath.Dir(filepath.Clean(dir)))
	}
	for a := range initArches {
		if strings.HasSuffix(base, "-"+a) {
			return a
		}
	}
	return ""
}

// initBinary picks the /init binary: --binary as given, else this executable when its
// architecture matches, else nowhere-ARCH next to it. The architecture is --arch, else
// the kernel's (--kernel), else the module directory's, else this machine's. A --binary
// for another architecture than the one asked for or detected is refused.
func initBinary(o initramfsOptions) (string, error) {
	arch, from := o.arch, "--arch"
	if arch != "" {
		if _, ok := initArches[arch]; !ok {
			return "", fmt.Errorf("--arch %s: want amd64 or arm64", arch)
		}
	}
	if arch == "" && o.kernel != "" {
		a, err := kernelArch(o.kernel)
		if err != nil {
			return "", fmt.Errorf("--kernel: %w", err)
		}
		if a == "" {
			return "", fmt.Errorf("--kernel %s: not an arm64 Image, an x86 bzImage or a vmlinux of either (give --arch)", o.kernel)
		}
		arch, from = a, "the kernel "+o.kernel
	}
	if arch == "" && o.modules != "" {
		if a := modulesArch(o.modules); a != "" {
			arch, from = a, "the modules "+o.modules
		}
	}
	if o.binary != "" {
		if arch == "" {
			return o.binary, nil
		}
		a, err := elfFileArch(o.binary)
		if err != nil {
			return "", fmt.Errorf("--binary: %w", err)
		}
		if a != arch {
			if a == "" {
				a = "another architecture"
			}
			return "", fmt.Errorf("--binary %s is built for %s, but %s is %s", o.binary, a, from, arch)
		}
		return o.binary, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	if arch == "" || arch == runtime.GOARCH {
		return exe, nil
	}
	bin := filepath.Join(filepath.Dir(exe), "nowhere-"+arch)
	a, err := elfFileArch(bin)
	if err != nil {
		return "", fmt.Errorf("%s is %s, so /init must be a nowhere for %s: %w (make build makes it; or give --binary)", from, arch, arch, err)
	}
	if a != arch {
		return "", fmt.Errorf("%s is built for %s, but %s is %s", bin, a, from, arch)
	}
	return bin, nil
}
