package e2e

import (
	"fmt"
	"github.com/nowhere-boot/nowhere/internal/testutil"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nowhere-boot/nowhere/internal/index"
)

// formats are the filesystems images are made in, each packed under its own name.
var formats = []string{"ext4", "squashfs", "erofs"}

// fixture is built once per run and shared read-only by all tests: the source tree, an
// image of it in each format, and a store holding all three images (version 1, signed
// with the run's secretKey).
type fixture struct {
	tree     string
	srcNodes map[string]node
	images   map[string]string // format -> image file
	store    string
}

var (
	fxOnce sync.Once
	fx     *fixture
	fxErr  error
)

// getFixture returns the shared fixture, building it on first use.
func getFixture(t *testing.T) *fixture {
	t.Helper()
	needRoot(t)
	fxOnce.Do(func() { fx, fxErr = buildFixture(filepath.Join(workDir, "fixture")) })
	if fxErr != nil {
		t.Fatalf("building the shared fixture: %v", fxErr)
	}
	return fx
}

func buildFixture(dir string) (*fixture, error) {
	f := &fixture{tree: filepath.Join(dir, "tree"), images: map[string]string{}, store: filepath.Join(dir, "store")}
	if err := os.MkdirAll(f.tree, 0o755); err != nil {
		return nil, err
	}
	if err := makeTree(f.tree); err != nil {
		return nil, fmt.Errorf("source tree: %w", err)
	}
	var err error
	if f.srcNodes, err = scanTree(f.tree, nil); err != nil {
		return nil, err
	}
	for _, format := range formats {
		img := filepath.Join(dir, format+".img")
		if err := makeImage(format, f.tree, img); err != nil {
			return nil, err
		}
		f.images[format] = img
		out, err := exec.Command(nowhereBin, "pack", img, "--store", f.store, "--name", format, "--sign-key", secretKey).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("nowhere pack %s: %v: %s", img, err, out)
		}
	}
	return f, nil
}

// makeImage makes a filesystem image of tree in the given format.
func makeImage(format, tree, img string) error {
	var cmds [][]string
	switch format {
	case "ext4":
		// A 96 MiB sparse file for ~25 MiB of data: plenty of free space, long zero runs.
		cmds = [][]string{{"truncate", "-s", "96M", img}, {"mkfs.ext4", "-q", "-F", "-b", "4096", "-d", tree, img}}
	case "squashfs":
		cmds = [][]string{{"mksquashfs", tree, img, "-quiet", "-no-progress", "-noappend", "-processors", "2"}}
	case "erofs":
		cmds = [][]string{{"mkfs.erofs", "--quiet", img, tree}}
	default:
		return fmt.Errorf("unknown format %q", format)
	}
	for _, c := range cmds {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v: %s", strings.Join(c, " "), err, out)
		}
	}
	return nil
}

// kernelHas skips the test when the running kernel cannot mount fstype.
func kernelHas(t *testing.T, fstype string) {
	t.Helper()
	b, err := os.ReadFile("/proc/filesystems")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(strings.TrimPrefix(line, "nodev")) == fstype {
			return
		}
	}
	// The module may just not be loaded yet.
	if exec.Command("modprobe", fstype).Run() == nil {
		return
	}
	testutil.Missingf(t, "this kernel cannot mount %s (not in /proc/filesystems, modprobe %s failed)", fstype, fstype)
}

// skipLostFound leaves out what mkfs.ext4 adds on its own.
func skipLostFound(rel string) bool { return rel == "lost+found" }

// copyStore copies the shared store for a test that damages it.
func copyStore(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "store")
	mustRun(t, "cp", "-a", src, dst)
	return dst
}

// loadIndex decodes version v of image name from a store directory.
func loadIndex(t *testing.T, storeDir, name string, v int) *index.Index {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(storeDir, "images", name, fmt.Sprintf("%d.index", v)))
	if err != nil {
		t.Fatal(err)
	}
	ix, err := index.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return ix
}

// chunkURLPath is the URL path of a chunk, as it appears in access logs.
func chunkURLPath(e index.Entry) string {
	h := e.ID.String()
	return "/chunks/" + h[:4] + "/" + h + ".cacnk"
}
