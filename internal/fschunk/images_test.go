package fschunk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nowhere-boot/nowhere/internal/fstype"
	"github.com/nowhere-boot/nowhere/internal/mkfs"
	"github.com/nowhere-boot/nowhere/internal/testutil"
)

// treeFile is a regular file written by makeTree, for checking layouts against.
type treeFile struct {
	path string
	data []byte
}

// makeTree writes a tree with many files of many sizes: random (incompressible, so that
// squashfs and erofs store them verbatim and the test can find them in the image) and
// text (compressible), hard links, a sparse file, symlinks and nested directories. It
// returns the tree and its distinct incompressible files of at least 4 KiB.
func makeTree(t testing.TB, seed uint64) (string, []treeFile) {
	t.Helper()
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(seed, 7))
	var found []treeFile
	write := func(rel string, data []byte) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sizes := []int{0, 1, 100, 4095, 4096, 4097, 20000, 65536, 131072, 131073, 300000, 1 << 20}
	for i := 0; i < 150; i++ {
		n := sizes[i%len(sizes)]
		if i%5 == 4 {
			n = rng.IntN(200000)
		}
		rel := filepath.Join("d"+string(rune('a'+i%7)), "sub"+string(rune('0'+i%3)), "f"+itoa(i))
		if i%3 == 0 { // text: compresses
			var b strings.Builder
			for b.Len() < n {
				b.WriteString("line " + itoa(rng.IntN(1000)) + " of some text that compresses well\n")
			}
			write(rel, []byte(b.String()[:n]))
			continue
		}
		data := randomBytes(rng, n)
		write(rel, data)
		if n >= 4096 {
			found = append(found, treeFile{rel, data})
		}
	}
	// Hard links and symlinks.
	if err := os.Link(filepath.Join(dir, found[0].path), filepath.Join(dir, "hardlink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(found[1].path, filepath.Join(dir, "symlink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(strings.Repeat("long/", 40)+"target", filepath.Join(dir, "longlink")); err != nil {
		t.Fatal(err)
	}
	// A sparse file: 4 MiB of hole, 64 KiB of data, more hole.
	f, err := os.Create(filepath.Join(dir, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(randomBytes(rng, 65536), 4<<20); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(12 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return dir, found
}

func itoa(i int) string { return strconv.Itoa(i) }

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n+8)
	for j := 0; j < n; j += 8 {
		binary.LittleEndian.PutUint64(b[j:], rng.Uint64())
	}
	return b[:n]
}

// buildImage makes the nowhere-standard image of tree with mkfs.Build.
func buildImage(t testing.TB, typ fstype.Type, tree string) string {
	t.Helper()
	testutil.Tool(t, map[fstype.Type]string{fstype.Ext4: "mkfs.ext4", fstype.Erofs: "mkfs.erofs", fstype.Squashfs: "mksquashfs"}[typ])
	out := filepath.Join(t.TempDir(), "img."+string(typ))
	if err := mkfs.Build(context.Background(), mkfs.Options{FS: typ, Tree: tree, Out: out, Seed: "test"}); err != nil {
		t.Fatal(err)
	}
	return out
}

// runTool runs a command, failing the test with its output on error.
func runTool(t testing.TB, name string, args ...string) {
	t.Helper()
	path := testutil.Tool(t, name)
	out, err := exec.Command(path, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// readLayout reads the layout of the image file at path.
func readLayout(t testing.TB, typ fstype.Type, path string) (*Layout, []byte) {
	t.Helper()
	img, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fstype.Detect(img); got != typ {
		t.Fatalf("image detected as %q, want %q", got, typ)
	}
	l, err := Read(typ, bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatalf("reading layout: %v", err)
	}
	return l, img
}

// checkFilesAtCuts asserts that each file's first 4 KiB (stored verbatim: incompressible)
// start exactly at a cut point of l, and that the cuts are sorted and inside the image.
func checkFilesAtCuts(t *testing.T, l *Layout, img []byte, files []treeFile) {
	t.Helper()
	at := make(map[[32]byte]bool, len(l.Cuts))
	for i, c := range l.Cuts {
		if c <= 0 || c >= int64(len(img)) || (i > 0 && c <= l.Cuts[i-1]) {
			t.Fatalf("cut %d at %d: not sorted or outside the %d-byte image", i, c, len(img))
		}
		if c+4096 <= int64(len(img)) {
			at[sha256.Sum256(img[c:c+4096])] = true
		}
	}
	missing := 0
	for _, f := range files {
		if !at[sha256.Sum256(f.data[:4096])] {
			missing++
			if missing <= 3 {
				t.Errorf("%s: its data does not start at a cut point", f.path)
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d files do not start at a cut point", missing, len(files))
	}
}
