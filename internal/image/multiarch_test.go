package image

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/pack"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// packArch publishes a small image called name for arch ("": any) and returns its version.
func packArch(t *testing.T, d *store.Dir, name, arch string, seed uint64) uint64 {
	t.Helper()
	sp, err := chunk.ParseSpec("fixed:64K")
	if err != nil {
		t.Fatal(err)
	}
	res, err := pack.Run(context.Background(), bytes.NewReader(randBytes(seed, 256<<10)), d, pack.Options{Name: name, Spec: sp,
		Finish: func(ix *index.Index) error { ix.Arch = arch; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	return res.Index.Version
}

// TestMultiArchImage: one image name published for amd64 (versions 1 and 3) and arm64
// (version 2). latest.amd64 and latest.arm64 name each architecture's newest; latest
// stays with amd64, so a machine that knows only latest (every one from before arm64
// support: all x86-64) never gets arm64's. A load for a machine follows its own pointer, falls back
// to latest where the store has none (any older store), and refuses a per-architecture
// pointer that names another architecture's index.
func TestMultiArchImage(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "store")
	d, err := store.CreateDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	packArch(t, d, "os", "amd64", 1)
	packArch(t, d, "os", "arm64", 2)
	packArch(t, d, "os", "amd64", 3)
	pointer := func(p string) uint64 {
		b, err := d.File(ctx, p, index.MaxPointer)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		pt, err := index.ParsePointer(b)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		return pt.Version
	}
	for p, want := range map[string]uint64{"images/os/latest": 3, "images/os/latest.amd64": 3, "images/os/latest.arm64": 2} {
		if got := pointer(p); got != want {
			t.Errorf("%s names version %d, want %d", p, got, want)
		}
	}
	for arch, want := range map[string]struct {
		version uint64
		arch    string
	}{"amd64": {3, "amd64"}, "arm64": {2, "arm64"}, "": {3, "amd64"}, "riscv64": {3, "amd64"}} {
		ix, _, err := Load(ctx, d, Location{Store: dir, Name: "os", Arch: arch}, store.Policy{})
		if err != nil || ix.Version != want.version || ix.Arch != want.arch {
			t.Errorf("load for %q: %v; want version %d (%s)", arch, err, want.version, want.arch)
			continue
		}
	}
	// An arm64-only image has latest too; once amd64 is published, latest is amd64's.
	packArch(t, d, "tools", "arm64", 4)
	if got := pointer("images/tools/latest"); got != 1 {
		t.Errorf("tools: latest names version %d, want 1 (the only one, arm64)", got)
	}
	packArch(t, d, "tools", "amd64", 5)
	if got := pointer("images/tools/latest"); got != 2 {
		t.Errorf("tools: latest names version %d, want 2 (amd64)", got)
	}
	// An image published for any architecture keeps latest when arm64 is published.
	packArch(t, d, "legacy", "", 7)
	packArch(t, d, "legacy", "arm64", 8)
	if got := pointer("images/legacy/latest"); got != 1 {
		t.Errorf("legacy: latest names version %d, want 1 (any; arm64 has latest.arm64)", got)
	}
	if got := pointer("images/legacy/latest.arm64"); got != 2 {
		t.Errorf("legacy: latest.arm64 names version %d, want 2", got)
	}
	// An image for any architecture moves latest alone.
	packArch(t, d, "data", "", 6)
	if _, err := d.File(ctx, "images/data/latest.amd64", index.MaxPointer); err == nil {
		t.Error("an image for any architecture got a latest.amd64")
	}
	if ix, _, err := Load(ctx, d, Location{Store: dir, Name: "data", Arch: "amd64"}, store.Policy{}); err != nil || ix.Version != 1 {
		t.Errorf("load of a data image for amd64 (no latest.amd64): %v", err)
	}
	// latest.arm64 swapped for a copy of latest.amd64: refused, naming both.
	amd, _ := os.ReadFile(filepath.Join(dir, "images/os/latest.amd64"))
	if err := os.WriteFile(filepath.Join(dir, "images/os/latest.arm64"), amd, 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err = Load(ctx, d, Location{Store: dir, Name: "os", Arch: "arm64"}, store.Policy{})
	if err == nil || !strings.Contains(err.Error(), "an image for amd64, not arm64") || !strings.Contains(err.Error(), "latest.arm64") {
		t.Errorf("a latest.arm64 naming the amd64 index: %v, want a refusal naming both", err)
	}
}
