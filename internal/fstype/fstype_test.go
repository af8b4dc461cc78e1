package fstype

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/nowhere-boot/nowhere/internal/testutil"
)

// mkfs makes a small real filesystem image with the system's tools.
func mkfs(t *testing.T, typ string) []byte {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(filepath.Join(src, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "etc", "hostname"), []byte("nowhere\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "img")
	var cmd []string
	switch typ {
	case "ext4", "ext2":
		cmd = []string{"mkfs." + typ, "-q", "-F", "-b", "4096", "-d", src, img, "8M"}
	case "squashfs":
		cmd = []string{"mksquashfs", src, img, "-quiet", "-noappend", "-no-progress"}
	case "erofs":
		cmd = []string{"mkfs.erofs", "--quiet", img, src}
	}
	if out, err := exec.Command(testutil.Tool(t, cmd[0]), cmd[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", cmd, err, out)
	}
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	return b[:HeaderSize]
}

func TestDetectRealImages(t *testing.T) {
	for typ, want := range map[string]Type{"ext4": Ext4, "ext2": Ext4, "squashfs": Squashfs, "erofs": Erofs} {
		t.Run(typ, func(t *testing.T) {
			head := mkfs(t, typ)
			if got := Detect(head); got != want {
				t.Fatalf("Detect(%s image) = %q, want %q", typ, got, want)
			}
			// Any prefix either is recognised or not, without reading past its end.
			for n := 0; n < len(head); n++ {
				if got := Detect(head[:n]); got != Unknown && got != want {
					t.Fatalf("Detect of the first %d bytes = %q", n, got)
				}
			}
		})
	}
}

func TestDetectOther(t *testing.T) {
	cases := map[string][]byte{
		"empty":   nil,
		"zeros":   make([]byte, HeaderSize),
		"text":    bytes.Repeat([]byte("not a filesystem "), 200),
		"gzip":    append([]byte{0x1f, 0x8b, 8, 0}, make([]byte, HeaderSize)...),
		"hsq":     []byte("hsq"),
		"sqsh-be": append([]byte("sqsh"), make([]byte, HeaderSize)...), // big-endian squashfs: not supported by Linux >= 2.6.29
	}
	for name, b := range cases {
		if got := Detect(b); got != Unknown {
			t.Errorf("Detect(%s) = %q, want unknown", name, got)
		}
	}
}

func TestChunkAlign(t *testing.T) {
	for typ, want := range map[Type]int{Squashfs: 1, Erofs: 4096, Ext4: 4096, Unknown: 4096} {
		if got := ChunkAlign(typ); got != want {
			t.Errorf("ChunkAlign(%q) = %d, want %d", typ, got, want)
		}
	}
}
