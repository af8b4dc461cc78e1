package fschunk

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/nowhere-boot/nowhere/internal/fstype"
	"github.com/nowhere-boot/nowhere/internal/testutil"
)

func TestExt4Layout(t *testing.T) {
	tree, files := makeTree(t, 1)
	l, img := readLayout(t, fstype.Ext4, buildImage(t, fstype.Ext4, tree))
	checkFilesAtCuts(t, l, img, files)
}

func TestErofsLayout(t *testing.T) {
	tree, files := makeTree(t, 2)
	l, img := readLayout(t, fstype.Erofs, buildImage(t, fstype.Erofs, tree))
	checkFilesAtCuts(t, l, img, files)
}

func TestSquashfsLayout(t *testing.T) {
	tree, files := makeTree(t, 3)
	l, img := readLayout(t, fstype.Squashfs, buildImage(t, fstype.Squashfs, tree))
	checkFilesAtCuts(t, l, img, files)
}

// Squashfs with fragments (mksquashfs's default): files smaller than a block live in
// shared fragment blocks; each fragment block must be a range of its own.
func TestSquashfsFragmentsLayout(t *testing.T) {
	tree, files := makeTree(t, 4)
	for _, comp := range []string{"gzip", "zstd", "lz4"} {
		t.Run(comp, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "img")
			runTool(t, "mksquashfs", tree, out, "-noappend", "-quiet", "-no-progress", "-comp", comp)
			l, img := readLayout(t, fstype.Squashfs, out)
			// Files of at least one block start at a cut; smaller ones are in fragments.
			var big []treeFile
			for _, f := range files {
				if len(f.data) >= 131072 {
					big = append(big, f)
				}
			}
			checkFilesAtCuts(t, l, img, big)
			// Fragment blocks: stored raw, an incompressible small file's bytes appear at
			// some offset inside a fragment, which must lie between two cuts that do
			// not split it.
			for _, f := range files {
				if len(f.data) >= 131072 || len(f.data) < 4096 {
					continue
				}
				i := bytes.Index(img, f.data[:4096])
				if i < 0 {
					continue // compressed together with compressible neighbours
				}
				for _, c := range l.Cuts {
					if c > int64(i) && c < int64(i+len(f.data)) {
						t.Fatalf("%s: cut at %d splits its fragment data at %d-%d", f.path, c, i, i+len(f.data))
					}
				}
			}
		})
	}
}

// An ext4 file written into a fragmented filesystem has more extents than fit in the
// inode: its extent tree has depth 1, and every extent must still be found.
func TestExt4ExtentTreeDepth(t *testing.T) {
	testutil.Tool(t, "debugfs")
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	if err := os.MkdirAll(filepath.Join(tree, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	block := func(i int) []byte { return bytes.Repeat([]byte{byte(i), byte(i >> 8), 0x5a, 0xa5}, 1024) }
	for i := 0; i < 200; i++ {
		if err := os.WriteFile(filepath.Join(tree, "d", "f"+strconv.Itoa(i)), block(i), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(dir, "img")
	runTool(t, "mkfs.ext4", "-q", "-F", "-b", "4096", "-d", tree, img, "16M")
	// Free every other block, then write a file that has to fill the holes.
	var script strings.Builder
	for i := 0; i < 200; i += 2 {
		script.WriteString("rm /d/f" + strconv.Itoa(i) + "\n")
	}
	big := filepath.Join(dir, "big")
	var data []byte
	for i := 0; i < 150; i++ {
		data = append(data, bytes.Repeat([]byte{byte(i), 0xee, byte(i * 7), 0x11}, 1024)...)
	}
	if err := os.WriteFile(big, data, 0o644); err != nil {
		t.Fatal(err)
	}
	script.WriteString("write " + big + " /big\n")
	cmd := exec.Command("debugfs", "-w", "-f", "-", img)
	cmd.Stdin = strings.NewReader(script.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("debugfs: %v\n%s", err, out)
	}
	out, err := exec.Command("debugfs", "-R", "dump_extents /big", img).Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), " 0/ 1 ") {
		t.Fatalf("the test file's extent tree has no depth 1:\n%s", out)
	}
	// Every physical extent of /big (as debugfs lists them) starts and ends at a cut.
	l, _ := readLayout(t, fstype.Ext4, img)
	cuts := make(map[int64]bool)
	for _, c := range l.Cuts {
		cuts[c] = true
	}
	re := regexp.MustCompile(`^\s*1/\s*1\s+\d+/\s*\d+\s+\d+\s+-\s+\d+\s+(\d+)\s+-\s+(\d+)`)
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		m := re.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		start, _ := strconv.ParseInt(m[1], 10, 64)
		end, _ := strconv.ParseInt(m[2], 10, 64)
		if !cuts[start*4096] || !cuts[(end+1)*4096] {
			t.Errorf("extent %d-%d of /big is not bounded by cuts", start, end)
		}
		n++
	}
	if n < 5 {
		t.Fatalf("only %d leaf extents parsed from debugfs:\n%s", n, out)
	}
}

// erofs with lz4 compression: each compressed file's blocks, as dump.erofs reports
// them, must lie in one range bounded by cuts.
func TestErofsCompressedLayout(t *testing.T) {
	tree, _ := makeTree(t, 5)
	for _, variant := range [][]string{{"-zlz4"}, {"-zlz4", "-C16384"}} {
		t.Run(strings.Join(variant, " "), func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "img")
			runTool(t, "mkfs.erofs", append(append([]string{"--quiet"}, variant...), img, tree)...)
			l, _ := readLayout(t, fstype.Erofs, img)
			cuts := make(map[int64]bool)
			for _, c := range l.Cuts {
				cuts[c] = true
			}
			checked := 0
			err := filepath.WalkDir(tree, func(p string, d os.DirEntry, err error) error {
				if err != nil || !d.Type().IsRegular() || checked >= 25 {
					return err
				}
				rel, _ := filepath.Rel(tree, p)
				if st, err := d.Info(); err != nil || st.Size() < 8192 || rel == "sparse" || rel == "hardlink" {
					return err
				}
				first := erofsFirstBlock(t, img, rel)
				if first < 0 {
					return nil
				}
				if !cuts[first*4096] {
					t.Errorf("%s: first compressed block %d is not at a cut", rel, first)
				}
				checked++
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if checked == 0 {
				t.Fatal("no compressed file checked")
			}
		})
	}
}

// erofsFirstBlock returns the lowest physical block dump.erofs lists for a file's
// extents (-1 if it lists none).
func erofsFirstBlock(t *testing.T, img, rel string) int64 {
	t.Helper()
	testutil.Tool(t, "dump.erofs")
	out, err := exec.Command("dump.erofs", "--path=/"+rel, "-e", img).CombinedOutput()
	if err != nil {
		t.Fatalf("dump.erofs: %v\n%s", err, out)
	}
	// Extent lines: "  0: 0..4095 | 4096 : 1234..1234 | 1234" (physical byte ranges).
	re := regexp.MustCompile(`\|\s*\d+\s*:\s*(\d+)\.\.\s*(\d+)\s*\|`)
	first := int64(-1)
	for _, m := range re.FindAllStringSubmatch(string(out), -1) {
		p, _ := strconv.ParseInt(m[1], 10, 64)
		if first < 0 || p < first {
			first = p
		}
	}
	if first < 0 {
		t.Logf("dump.erofs listed no extents for %s:\n%s", rel, out)
		return -1
	}
	return first / 4096
}

// erofs chunk-based files (mkfs.erofs --chunksize): each chunk's blocks come from the
// inode's chunk index.
func TestErofsChunkBasedLayout(t *testing.T) {
	tree, files := makeTree(t, 6)
	img := filepath.Join(t.TempDir(), "img")
	runTool(t, "mkfs.erofs", "--quiet", "--chunksize=65536", img, tree)
	l, data := readLayout(t, fstype.Erofs, img)
	checkFilesAtCuts(t, l, data, files)
}
