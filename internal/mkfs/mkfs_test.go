package mkfs

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/fstype"
	"github.com/nowhere-boot/nowhere/internal/testutil"
)

var mkfsTool = map[fstype.Type]string{fstype.Ext4: "mkfs.ext4", fstype.Erofs: "mkfs.erofs", fstype.Squashfs: "mksquashfs"}

// sampleTree writes a small tree: files, nested directories, a symlink, a hard link and an
// empty file, with varied mtimes.
func sampleTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for i := 0; i < 60; i++ {
		p := filepath.Join(dir, "d"+strconv.Itoa(i%4), "f"+strconv.Itoa(i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		data := bytes.Repeat([]byte("file "+strconv.Itoa(i)+"\n"), i*400)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		mt := time.Unix(1_600_000_000+int64(i)*3600, 0)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("d1/f1", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(dir, "d2", "f2"), filepath.Join(dir, "hard")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func buildOrFail(t *testing.T, typ fstype.Type, tree string) []byte {
	t.Helper()
	testutil.Tool(t, mkfsTool[typ])
	out := filepath.Join(t.TempDir(), "img")
	if err := Build(context.Background(), Options{FS: typ, Tree: tree, Out: out, Seed: "t"}); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o644 {
		t.Errorf("image mode %v, want 0644", st.Mode().Perm())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if got := fstype.Detect(b); got != typ {
		t.Fatalf("built image detected as %q, want %q", got, typ)
	}
	return b
}

// The same tree gives the same image, even after its files were read (atime) and after
// it was copied elsewhere (new ctimes, new inode numbers on the host).
func TestBuildReproducible(t *testing.T) {
	for _, typ := range Types {
		t.Run(string(typ), func(t *testing.T) {
			tree := sampleTree(t)
			first := buildOrFail(t, typ, tree)
			time.Sleep(1100 * time.Millisecond) // let ctime/atime move on
			copyDir := filepath.Join(t.TempDir(), "copy")
			if out, err := exec.Command("cp", "-a", tree, copyDir).CombinedOutput(); err != nil {
				t.Fatalf("cp: %v\n%s", err, out)
			}
			for _, tr := range []string{tree, copyDir} {
				if again := buildOrFail(t, typ, tr); !bytes.Equal(first, again) {
					t.Fatalf("building %s again gives different bytes", tr)
				}
			}
		})
	}
}

// The image holds the tree: extracted with the format's own tools, every file, link and
// mtime matches.
func TestBuildContent(t *testing.T) {
	for _, typ := range Types {
		t.Run(string(typ), func(t *testing.T) {
			tree := sampleTree(t)
			img := filepath.Join(t.TempDir(), "img")
			if err := os.WriteFile(img, buildOrFail(t, typ, tree), 0o644); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "out")
			var cmd *exec.Cmd
			switch typ {
			case fstype.Squashfs:
				cmd = exec.Command(testutil.Tool(t, "unsquashfs"), "-no-progress", "-d", out, img)
			case fstype.Erofs:
				cmd = exec.Command(testutil.Tool(t, "fsck.erofs"), "--extract="+out, img)
			case fstype.Ext4:
				if err := os.Mkdir(out, 0o755); err != nil {
					t.Fatal(err)
				}
				cmd = exec.Command(testutil.Tool(t, "debugfs"), "-R", "rdump / "+out, img)
			}
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", cmd.Path, err, b)
			}
			// debugfs rdump sets times itself; mkfs.erofs -T0 makes every mtime 0.
			mtime := map[fstype.Type]string{fstype.Squashfs: "kept", fstype.Erofs: "zero"}[typ]
			compareTrees(t, tree, out, mtime)
		})
	}
}

func compareTrees(t *testing.T, want, got string, mtime string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		q := filepath.Join(got, rel)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			a, _ := os.Readlink(p)
			b, err := os.Readlink(q)
			if err != nil || a != b {
				t.Errorf("%s: link %q, want %q (%v)", rel, b, a, err)
			}
		case d.Type().IsRegular():
			a, _ := os.ReadFile(p)
			b, err := os.ReadFile(q)
			if err != nil || !bytes.Equal(a, b) {
				t.Errorf("%s: content differs (%v)", rel, err)
			}
			sa, _ := os.Stat(p)
			sb, err := os.Stat(q)
			switch {
			case err != nil:
			case mtime == "kept" && !sa.ModTime().Equal(sb.ModTime()):
				t.Errorf("%s: mtime %v, want %v", rel, sb.ModTime(), sa.ModTime())
			case mtime == "zero" && sb.ModTime().Unix() != 0:
				t.Errorf("%s: mtime %v, want 0", rel, sb.ModTime())
			}
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 60 {
		t.Fatalf("only %d files compared", n)
	}
}

func TestBuildBadInput(t *testing.T) {
	out := filepath.Join(t.TempDir(), "img")
	if err := Build(context.Background(), Options{FS: fstype.Erofs, Tree: "/nonexistent/tree", Out: out}); err == nil || !strings.Contains(err.Error(), "/nonexistent/tree") {
		t.Fatalf("missing tree: %v", err)
	}
	if _, err := ParseType("btrfs"); err == nil || !strings.Contains(err.Error(), "btrfs") {
		t.Fatalf("unknown type: %v", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("a failed build left %s behind", out)
	}
	entries, _ := os.ReadDir(filepath.Dir(out))
	if len(entries) != 0 {
		t.Fatalf("a failed build left temporary files: %v", entries)
	}
}
