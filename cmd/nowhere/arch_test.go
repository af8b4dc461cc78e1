package main

import (
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// minimalELF is an ELF64 little-endian header with no sections or segments.
func minimalELF(m elf.Machine) []byte {
	b := make([]byte, 64)
	copy(b, elf.ELFMAG)
	b[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	b[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	b[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	le := binary.LittleEndian
	le.PutUint16(b[16:], uint16(elf.ET_EXEC))
	le.PutUint16(b[18:], uint16(m))
	le.PutUint32(b[20:], uint32(elf.EV_CURRENT))
	le.PutUint16(b[52:], 64) // e_ehsize
	return b
}

func TestTreeArch(t *testing.T) {
	for _, c := range []struct {
		m    elf.Machine
		want string
	}{{elf.EM_AARCH64, "arm64"}, {elf.EM_X86_64, "amd64"}} {
		dir := t.TempDir()
		for _, d := range []string{"usr/bin", "sbin"} {
			if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "usr/bin/sh"), minimalELF(c.m), 0o755); err != nil {
			t.Fatal(err)
		}
		// Debian's usrmerge: /bin -> usr/bin; an absolute link is the tree's, not the host's.
		if err := os.Symlink("usr/bin", filepath.Join(dir, "bin")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("/bin/sh", filepath.Join(dir, "sbin/init")); err != nil {
			t.Fatal(err)
		}
		got, err := treeArch(dir)
		if err != nil || got != c.want {
			t.Fatalf("%v: got %q, %v; want %q", c.m, got, err, c.want)
		}
	}
	if _, err := treeArch(t.TempDir()); err == nil {
		t.Fatal("empty tree: no error")
	}
}
