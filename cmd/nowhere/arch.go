package main

import (
	"debug/elf"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// elfArch maps an ELF e_machine to its GOARCH spelling.
func elfArch(m elf.Machine) string {
	switch m {
	case elf.EM_X86_64:
		return "amd64"
	case elf.EM_AARCH64:
		return "arm64"
	case elf.EM_386:
		return "386"
	case elf.EM_RISCV:
		return "riscv64"
	}
	return ""
}

// treeArch returns the architecture of the root tree dir: the ELF machine of its
// /sbin/init, else /bin/sh. Symbolic links are resolved inside the tree (an absolute
// target is the tree's, not the host's).
func treeArch(dir string) (string, error) {
	for _, p := range []string{"/sbin/init", "/bin/sh"} {
		f, err := resolveInTree(dir, p)
		if err != nil {
			continue
		}
		e, err := elf.Open(f)
		if err != nil {
			continue
		}
		m := e.Machine
		e.Close()
		if a := elfArch(m); a != "" {
			return a, nil
		}
		return "", fmt.Errorf("%s: ELF machine %v is not one nowhere knows", p, m)
	}
	return "", fmt.Errorf("no ELF /sbin/init or /bin/sh to tell the architecture from")
}

// resolveInTree follows p's symbolic links with dir as the root, at most 40 of them.
func resolveInTree(dir, p string) (string, error) {
	p = path.Clean("/" + p)
	for hops := 0; hops < 40; hops++ {
		// Resolve the parents first, component by component.
		parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
		cur := "/"
		changed := false
		for i, c := range parts {
			next := path.Join(cur, c)
			fi, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(next)))
			if err != nil {
				return "", err
			}
			if fi.Mode()&os.ModeSymlink != 0 {
				t, err := os.Readlink(filepath.Join(dir, filepath.FromSlash(next)))
				if err != nil {
					return "", err
				}
				if !path.IsAbs(t) {
					t = path.Join(cur, t)
				}
				p = path.Clean("/" + path.Join(append([]string{t}, parts[i+1:]...)...))
				changed = true
				break
			}
			cur = next
		}
		if !changed {
			return filepath.Join(dir, filepath.FromSlash(p)), nil
		}
	}
	return "", fmt.Errorf("%s: too many symbolic links", p)
}
