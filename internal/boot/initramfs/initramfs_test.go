package initramfs

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nowhere-boot/nowhere/internal/boot/cmdline"
	"github.com/nowhere-boot/nowhere/internal/boot/kmod"
)

// testPub is a public key file made by nowhere keygen.
const testPub = "untrusted comment: minisign public key: DD8C4C2C5B6914A4\nRWSkFGlbLEyM3S0mochr89AkGTTdLUAvL69uA4V7UzJMYfosEw7I4v2j\n"

// staticBinary builds a tiny static Go program to stand in for /init.
func staticBinary(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module hello\ngo 1.21\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\nfunc main() {}\n"), 0o644)
	cmd := exec.Command("go", "build", "-o", "hello", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return filepath.Join(dir, "hello")
}

func moduleTree(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "6.1.0-56-amd64")
	for name, content := range map[string]string{
		"modules.dep": "kernel/fs/fuse/fuse.ko:\nkernel/drivers/net/virtio_net.ko: kernel/net/core/failover.ko\n" +
			"kernel/net/core/failover.ko:\nkernel/fs/overlayfs/overlay.ko:\n",
		"modules.alias":                    "alias virtio:d00000001v* virtio_net\nalias fs-overlay overlay\n",
		"modules.builtin":                  "kernel/fs/squashfs/squashfs.ko\n",
		"kernel/fs/fuse/fuse.ko":           "FUSE",
		"kernel/net/core/failover.ko":      "FAILOVER",
		"kernel/drivers/net/virtio_net.ko": "VIRTIO_NET",
		"kernel/fs/overlayfs/overlay.ko":   "OVERLAY",
	} {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644)
	}
	return dir
}

func TestBuildWritesABootableLayout(t *testing.T) {
	bin := staticBinary(t)
	out := filepath.Join(t.TempDir(), "initramfs.img")
	for _, how := range []string{"gzip", "zstd", "none"} {
		sum, err := Write(out, Options{
			Init: bin, Modules: moduleTree(t), Compress: how,
			Load: []string{"fuse", "squashfs", "overlay"}, Drivers: []string{"virtio_net", "e1000e"},
			Defaults:    "nowhere.image=http://10.0.2.100/images/debian nowhere.mirror=http://10.0.2.101",
			TrustedKeys: []byte(testPub),
		})
		if err != nil {
			t.Fatalf("%s: %v", how, err)
		}
		f, _ := os.Open(out)
		names, err := List(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", how, err)
		}
		for _, want := range []string{"/init", "/dev/console", "/proc", "/sys", "/run", "/etc/nowhere/cmdline", PlanFile,
			"/lib/modules/6.1.0-56-amd64/kernel/fs/fuse/fuse.ko", "/lib/modules/6.1.0-56-amd64/kernel/net/core/failover.ko",
			"/lib/modules/6.1.0-56-amd64/modules.dep", "/lib/modules/6.1.0-56-amd64/modules.alias", "/lib/modules/6.1.0-56-amd64/modules.builtin"} {
			if !slices.Contains(names, want) {
				t.Errorf("%s: %s missing from %v", how, want, names)
			}
		}
		if sum.Kernel != "6.1.0-56-amd64" || len(sum.Modules) != 4 {
			t.Errorf("%s: summary %+v", how, sum)
		}
		if !strings.Contains(strings.Join(sum.Notes, ";"), "squashfs is built into") {
			t.Errorf("%s: notes %q", how, sum.Notes)
		}
		f, _ = os.Open(out)
		plan, err := ReadFile(f, PlanFile)
		f.Close()
		p, perr := kmod.ParsePlan(plan)
		if err != nil || perr != nil || !slices.Equal(p.Load, []string{"fuse", "overlay"}) || !slices.Equal(p.Drivers, []string{"virtio_net"}) {
			t.Errorf("%s: plan %+v (%v, %v)", how, p, err, perr)
		}
		f, _ = os.Open(out)
		baked, _ := ReadFile(f, DefaultsFile)
		f.Close()
		c, err := cmdline.Parse(cmdline.Layer{Name: "baked", Text: string(baked)})
		if err != nil || c.Image != "http://10.0.2.100/images/debian" || len(c.Mirrors) != 1 {
			t.Errorf("%s: baked defaults %q -> %+v, %v", how, baked, c, err)
		}
		f, _ = os.Open(out)
		keys, err := ReadFile(f, "/etc/nowhere/trusted.pub")
		f.Close()
		if err != nil || string(keys) != testPub {
			t.Errorf("%s: baked keys %q, %v; want %q", how, keys, err, testPub)
		}
	}
}

// The archive must be readable by GNU cpio, the reference implementation of newc.
func TestArchiveIsReadableByCpio(t *testing.T) {
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Fatal("cpio is not installed (scripts/install-deps.sh test installs it)")
	}
	var b bytes.Buffer
	if _, err := Build(&b, Options{Init: staticBinary(t), Compress: "none"}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("cpio", "-it", "--quiet")
	cmd.Stdin = &b
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cpio -it: %v", err)
	}
	got := strings.Fields(string(out))
	for _, want := range []string{"init", "dev", "dev/console", "etc/nowhere/cmdline"} {
		if !slices.Contains(got, want) {
			t.Errorf("cpio lists %v, missing %s", got, want)
		}
	}
	// Parents come before their contents, or the kernel drops the file.
	if slices.Index(got, "dev") > slices.Index(got, "dev/console") || slices.Index(got, "etc/nowhere") > slices.Index(got, "etc/nowhere/cmdline") {
		t.Errorf("a directory comes after its contents: %v", got)
	}
}

func TestBuildRefusesWhatCannotBoot(t *testing.T) {
	bin := staticBinary(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"dynamic init", Options{Init: "/bin/ls"}, "CGO_ENABLED=0"},
		{"not ELF", Options{Init: "/etc/hostname"}, "not an ELF"},
		{"bad default", Options{Init: bin, Defaults: "nowhere.ip=bogus"}, "nowhere.ip"},
		{"no modules.dep", Options{Init: bin, Modules: dir}, "depmod"},
		{"required module missing", Options{Init: bin, Modules: moduleTree(t), Load: []string{"erofs"},
			Required: func(string) bool { return true }}, "erofs"},
		{"bad compression", Options{Init: bin, Compress: "lzma"}, "want gzip"},
		{"bad CA file", Options{Init: bin, CACerts: "/etc/hostname"}, "PEM"},
		{"bad key file", Options{Init: bin, TrustedKeys: []byte("RWSnotakey\n")}, "trusted keys"},
		{"empty key file", Options{Init: bin, TrustedKeys: []byte{}}, "no public key"},
	} {
		out := filepath.Join(dir, "out.img")
		_, err := Write(out, tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tc.name, err, tc.want)
		}
		if _, serr := os.Stat(out); serr == nil {
			t.Errorf("%s: left an output file behind", tc.name)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("temporary files left: %v", entries)
	}
}
