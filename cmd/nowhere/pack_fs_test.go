package main

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nowhere-boot/nowhere/internal/testutil"
)

// fsPackBinary builds the nowhere binary once per test into a temporary directory.
func fsPackBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "nowhere")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func fsPackRun(t *testing.T, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

func fsPackTree(t *testing.T) string {
	t.Helper()
	tree := t.TempDir()
	for i := 0; i < 30; i++ {
		p := filepath.Join(tree, "d", strings.Repeat("x", i%5+1)+string(rune('a'+i%26)))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, bytes.Repeat([]byte{byte(i), 1, 2, 3, byte(i * 3)}, 3000*(i%4+1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return tree
}

// pack --from-dir builds a reproducible image, keeps it with --save-image and packs it
// with filesystem-aware chunking by default.
func TestPackFromDir(t *testing.T) {
	bin := fsPackBinary(t)
	for _, fs := range []string{"ext4", "squashfs", "erofs"} {
		t.Run(fs, func(t *testing.T) {
			testutil.Tool(t, map[string]string{"ext4": "mkfs.ext4", "squashfs": "mksquashfs", "erofs": "mkfs.erofs"}[fs])
			tree, dir := fsPackTree(t), t.TempDir()
			img := filepath.Join(dir, "root."+fs)
			out, errs, code := fsPackRun(t, bin, "pack", "--from-dir", tree, "--fs", fs, "--save-image", img,
				"--store", filepath.Join(dir, "store"), "--name", "root", "--progress", "never")
			if code != 0 || errs != "" {
				t.Fatalf("exit %d, stderr %q", code, errs)
			}
			if !strings.Contains(out, "("+fs+"), chunking fs:16K:64K:256K") {
				t.Fatalf("summary does not name fs chunking of a %s image:\n%s", fs, out)
			}
			if _, err := os.Stat(img); err != nil {
				t.Fatalf("--save-image: %v", err)
			}
		})
	}
}

// A recognised but corrupt image packs with content-defined chunking after one warning.
func TestPackCorruptImageWarnsOnce(t *testing.T) {
	testutil.Tool(t, "mkfs.ext4")
	bin := fsPackBinary(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "root.ext4")
	if _, errs, code := fsPackRun(t, bin, "pack", "--from-dir", fsPackTree(t), "--fs", "ext4", "--save-image", img,
		"--store", filepath.Join(dir, "s1"), "--name", "root"); code != 0 {
		t.Fatalf("building: %s", errs)
	}
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint32(b[1024+24:], 40) // block size 1K<<40
	if err := os.WriteFile(img, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, errs, code := fsPackRun(t, bin, "pack", img, "--store", filepath.Join(dir, "s2"), "--name", "root", "--progress", "never")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(errs), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "nowhere: warning: "+img+": cannot read the ext4 metadata") {
		t.Fatalf("stderr %q, want one warning line", errs)
	}
	if !strings.Contains(out, "chunking cdc:16K:64K:256K:4096") {
		t.Fatalf("summary does not show the cdc fallback:\n%s", out)
	}
}

func TestPackFromDirBadInput(t *testing.T) {
	bin := fsPackBinary(t)
	store := filepath.Join(t.TempDir(), "store")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--from-dir", "/nonexistent/tree", "--fs", "erofs"}, "/nonexistent/tree"},
		{[]string{"--from-dir", t.TempDir(), "--fs", "btrfs"}, `--fs "btrfs"`},
		{[]string{"--from-dir", t.TempDir()}, "--from-dir needs --fs: the filesystem to build the tree into"},
		{[]string{"img", "--fs", "ext4"}, "--fs and --save-image go with --from-dir"},
		{[]string{"--from-dir", t.TempDir(), "--fs", "erofs", "extra"}, "unknown command"},
	} {
		_, errs, code := fsPackRun(t, bin, append([]string{"pack", "--store", store, "--name", "x"}, c.args...)...)
		lines := strings.Split(strings.TrimSpace(errs), "\n")
		if code == 0 || !strings.Contains(lines[0], c.want) {
			t.Errorf("%v: exit %d, stderr %q; want an error naming %q", c.args, code, errs, c.want)
		}
	}
}

// TestPackRefusesBadExpiry: an --expires that would publish an already expired index (0,
// negative), or overflow into the past (292 years and more), is refused in one line, with
// a non-zero exit and nothing published.
func TestPackRefusesBadExpiry(t *testing.T) {
	bin := fsPackBinary(t)
	store := filepath.Join(t.TempDir(), "store")
	img := filepath.Join(t.TempDir(), "img")
	os.WriteFile(img, make([]byte, 1<<20), 0o644)
	for expires, want := range map[string]string{
		"0s": "expires when published", "0d": "expires when published", "-1h": "want e.g.",
		"106752d": "longer than", "300y": "want e.g.", "36501d": "at most 36500d",
	} {
		_, errs, code := fsPackRun(t, bin, "pack", img, "--store", store, "--name", "x", "--expires", expires)
		lines := strings.Split(strings.TrimSpace(errs), "\n")
		if code == 0 || len(lines) != 1 || !strings.Contains(lines[0], want) {
			t.Errorf("--expires %s: exit %d, stderr %q; want one line saying %q", expires, code, errs, want)
		}
	}
	if _, err := os.Stat(filepath.Join(store, "images")); err == nil {
		t.Error("a refused pack published something")
	}
}
