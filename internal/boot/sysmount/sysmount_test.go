package sysmount

import (
	"github.com/nowhere-boot/nowhere/internal/testutil"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nowhere-boot/nowhere/internal/boot/loopdev"
	"github.com/nowhere-boot/nowhere/internal/fstype"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		testutil.Missing(t, "needs root: mounts and loop devices (make test runs as root)")
	}
}

func mustRun(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func unmountOnCleanup(t *testing.T, dir string) {
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
}

// makeImage builds a filesystem image of type typ holding hello.txt.
func makeImage(t *testing.T, typ fstype.Type) string {
	t.Helper()
	tree := t.TempDir()
	os.WriteFile(filepath.Join(tree, "hello.txt"), []byte("hello from "+string(typ)+"\n"), 0o644)
	img := filepath.Join(t.TempDir(), "root."+string(typ))
	switch typ {
	case fstype.Squashfs:
		mustRun(t, "mksquashfs", tree, img, "-quiet", "-noappend")
	case fstype.Erofs:
		mustRun(t, "mkfs.erofs", "-zlz4hc", img, tree)
	case fstype.Ext4:
		mustRun(t, "mkfs.ext4", "-q", "-d", tree, img, "8M")
	}
	return img
}

// The boot's data path below FUSE, for real: loop device (read-only, direct I/O,
// autoclear) -> filesystem detected from its superblock -> overlay on a tmpfs.
func TestLoopMountAndOverlayEveryFormat(t *testing.T) {
	needRoot(t)
	for _, typ := range []fstype.Type{fstype.Squashfs, fstype.Erofs, fstype.Ext4} {
		t.Run(string(typ), func(t *testing.T) {
			img := makeImage(t, typ)
			dev, err := loopdev.Attach(img, loopdev.Options{DirectIO: true, AutoClear: true})
			if err != nil {
				t.Fatal(err)
			}
			defer dev.Close()
			if back, _ := loopdev.BackingFile(dev.Path); back != img {
				t.Errorf("backing file of %s = %q, want %q", dev.Path, back, img)
			}
			base := t.TempDir()
			lower, rw, root := filepath.Join(base, "lower"), filepath.Join(base, "rw"), filepath.Join(base, "root")
			got, err := ReadOnly(dev.Path, lower)
			if err != nil {
				t.Fatal(err)
			}
			unmountOnCleanup(t, lower)
			dev.Close() // the mount holds the device now
			if got != typ {
				t.Errorf("detected %q, want %q", got, typ)
			}
			if err := Tmpfs(rw); err != nil {
				t.Fatal(err)
			}
			unmountOnCleanup(t, rw)
			if err := Overlay(lower, rw, root); err != nil {
				t.Fatal(err)
			}
			unmountOnCleanup(t, root)
			if b, err := os.ReadFile(filepath.Join(root, "hello.txt")); err != nil || string(b) != "hello from "+string(typ)+"\n" {
				t.Errorf("read through overlay: %q, %v", b, err)
			}
			if err := os.WriteFile(filepath.Join(root, "new.txt"), []byte("written"), 0o644); err != nil {
				t.Fatalf("write into overlay: %v", err)
			}
			if _, err := os.Stat(filepath.Join(rw, "upper", "new.txt")); err != nil {
				t.Errorf("the write did not land in the upper layer: %v", err)
			}
			if err := os.WriteFile(filepath.Join(lower, "x"), nil, 0o644); err == nil {
				t.Error("the image mount is writable")
			}
			// Autoclear: once unmounted, the loop device lets go of the image.
			for _, d := range []string{root, rw, lower} {
				if err := unix.Unmount(d, 0); err != nil {
					t.Fatalf("umount %s: %v", d, err)
				}
			}
			if back, err := loopdev.BackingFile(dev.Path); err == nil && back == img {
				t.Errorf("%s still attached to %s after unmount", dev.Path, img)
			}
		})
	}
}

func TestReadOnlyRefusesUnknownFilesystems(t *testing.T) {
	f := filepath.Join(t.TempDir(), "junk")
	os.WriteFile(f, make([]byte, 4096), 0o644)
	if _, err := ReadOnly(f, t.TempDir()); err == nil || !strings.Contains(err.Error(), "no squashfs, erofs or ext4 superblock") {
		t.Errorf("err = %v", err)
	}
}

// Debian's layout: /sbin -> usr/sbin, /usr/sbin/init -> /lib/systemd/systemd (absolute).
func TestFindInitResolvesInsideTheRoot(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "usr/sbin"), 0o755)
	os.MkdirAll(filepath.Join(root, "usr/lib/systemd"), 0o755)
	os.Symlink("usr/sbin", filepath.Join(root, "sbin"))
	os.Symlink("usr/lib", filepath.Join(root, "lib"))
	os.WriteFile(filepath.Join(root, "usr/lib/systemd/systemd"), []byte("#!"), 0o755)
	os.Symlink("/lib/systemd/systemd", filepath.Join(root, "usr/sbin/init"))
	got, err := FindInit(root, InitCandidates)
	if err != nil || got != "/sbin/init" {
		t.Errorf("FindInit = %q, %v; want /sbin/init", got, err)
	}

	// A link that points at a host path must not be followed out of the image.
	other := t.TempDir()
	os.MkdirAll(filepath.Join(other, "sbin"), 0o755)
	os.Symlink("/usr/bin/busybox", filepath.Join(other, "sbin/init"))
	os.WriteFile(filepath.Join(other, "noexec"), []byte("x"), 0o644)
	_, err = FindInit(other, []string{"/sbin/init", "/noexec", "/missing"})
	if err == nil {
		t.Fatal("FindInit followed a symlink out of the root")
	}
	for _, want := range []string{"/sbin/init", "/noexec: not executable", "/missing"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not explain %s", err, want)
		}
	}
}

// removeTree is what frees the initramfs at switch_root: it must delete every file on the
// old root's filesystem and nothing on another one (the root daemon's FUSE mount).
func TestRemoveTreeStaysOnItsFilesystem(t *testing.T) {
	needRoot(t)
	top := t.TempDir()
	if err := Tmpfs(top); err != nil {
		t.Fatal(err)
	}
	unmountOnCleanup(t, top)
	os.MkdirAll(filepath.Join(top, "etc/nowhere"), 0o755)
	os.WriteFile(filepath.Join(top, "init"), []byte("x"), 0o755)
	os.WriteFile(filepath.Join(top, "etc/nowhere/cmdline"), []byte("x"), 0o644)
	os.Symlink("/etc", filepath.Join(top, "link"))
	keep := filepath.Join(top, ".nowhere")
	if err := Tmpfs(keep); err != nil {
		t.Fatal(err)
	}
	unmountOnCleanup(t, keep)
	os.WriteFile(filepath.Join(keep, "image.img"), []byte("served"), 0o444)

	fd, err := unix.Open(top, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	unix.Fstat(fd, &st)
	removeTree(fd, st.Dev)

	entries, _ := os.ReadDir(top)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{".nowhere"}) {
		t.Errorf("left %v, want only the other filesystem's mount point", names)
	}
	if b, err := os.ReadFile(filepath.Join(keep, "image.img")); err != nil || string(b) != "served" {
		t.Errorf("the other filesystem was touched: %q, %v", b, err)
	}
}
