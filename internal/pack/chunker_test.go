package pack

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/fschunk"
	"github.com/nowhere-boot/nowhere/internal/fstype"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/mkfs"
	"github.com/nowhere-boot/nowhere/internal/store"
	"github.com/nowhere-boot/nowhere/internal/testutil"
)

// writeTree fills dir with n files of varied sizes and content (random and text), a hard
// link and a sparse file; files named with prefix.
func writeTree(t *testing.T, dir, prefix string, n int, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	for i := 0; i < n; i++ {
		size := []int{0, 300, 5000, 40000, 70000, 150000, 400000}[i%7] + rng.IntN(3000)
		data := make([]byte, size+8)
		if i%2 == 0 {
			for j := 0; j < size; j += 8 {
				binary.LittleEndian.PutUint64(data[j:], rng.Uint64())
			}
		} else {
			line := []byte("text line " + strconv.Itoa(i) + " repeats and compresses\n")
			for j := 0; j < size; j += len(line) {
				copy(data[j:], line)
			}
		}
		p := filepath.Join(dir, "dir"+strconv.Itoa(i%5), prefix+strconv.Itoa(i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data[:size], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(filepath.Join(dir, "dir0", prefix+"0"), filepath.Join(dir, prefix+"hardlink")); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, prefix+"sparse"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(bytes.Repeat([]byte("sparse"), 20000), 3<<20); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(9 << 20); err != nil {
		t.Fatal(err)
	}
}

var tools = map[fstype.Type]string{fstype.Ext4: "mkfs.ext4", fstype.Erofs: "mkfs.erofs", fstype.Squashfs: "mksquashfs"}

func build(t *testing.T, typ fstype.Type, tree string) string {
	t.Helper()
	testutil.Tool(t, tools[typ])
	out := filepath.Join(t.TempDir(), "img")
	if err := mkfs.Build(context.Background(), mkfs.Options{FS: typ, Tree: tree, Out: out, Seed: "packtest"}); err != nil {
		t.Fatal(err)
	}
	return out
}

// packFile packs the image file at path with fs-aware chunking and returns the result,
// the store and the warnings.
func packFile(t *testing.T, path string, st *store.Dir, fsAware bool) (*Result, []string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	spec, err := chunk.ParseSpec(chunk.DefaultSpec)
	if err != nil {
		t.Fatal(err)
	}
	var warnings []string
	res, err := Run(context.Background(), f, st, Options{
		Name: "img", Spec: spec, FSAware: fsAware, Workers: 2,
		Warn: func(msg string) { warnings = append(warnings, msg) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return res, warnings
}

// reassemble rebuilds the image from the index and the store's chunk files and compares
// it with the original byte for byte.
func reassemble(t *testing.T, ix *index.Index, st *store.Dir, path string) {
	t.Helper()
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if ix.Size != int64(len(want)) {
		t.Fatalf("index size %d, image %d bytes", ix.Size, len(want))
	}
	var got []byte
	for _, e := range ix.Entries {
		if e.Zero {
			got = append(got, make([]byte, e.Len)...)
			continue
		}
		raw, err := st.Chunk(context.Background(), chunk.Ref{ID: e.ID, Len: e.Len, Stored: e.Stored})
		if err != nil {
			t.Fatal(err)
		}
		plain, err := chunk.Decode(nil, e.ID, int(e.Len), raw)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, plain...)
	}
	if !bytes.Equal(got, want) {
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("reassembled image differs from the original at byte %d", i)
			}
		}
	}
}

// Whatever the filesystem, a pack with fs-aware chunking cuts at every data boundary the
// metadata names, records Kind fs, and the chunks reassemble the image exactly.
func TestFSAwarePackReassembles(t *testing.T) {
	tree := t.TempDir()
	writeTree(t, tree, "f", 120, 1)
	images := map[string]string{}
	for _, typ := range []fstype.Type{fstype.Ext4, fstype.Erofs, fstype.Squashfs} {
		images[string(typ)] = build(t, typ, tree)
	}
	testutil.Tool(t, "mksquashfs")
	sqFrag := filepath.Join(t.TempDir(), "frag.squashfs")
	runCmd(t, "mksquashfs", tree, sqFrag, "-quiet", "-no-progress", "-comp", "zstd") // with fragments
	images["squashfs-fragments"] = sqFrag
	erofsLZ4 := filepath.Join(t.TempDir(), "lz4.erofs")
	runCmd(t, "mkfs.erofs", "--quiet", "-zlz4", erofsLZ4, tree)
	images["erofs-lz4"] = erofsLZ4

	for name, path := range images {
		t.Run(name, func(t *testing.T) {
			st, err := store.CreateDir(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			res, warnings := packFile(t, path, st, true)
			if len(warnings) > 0 {
				t.Fatalf("warnings: %q", warnings)
			}
			if k := res.Index.Chunking.Kind; k != chunk.KindFS {
				t.Fatalf("chunking kind %v, want fs", k)
			}
			reassemble(t, res.Index, st, path)
			// Every hard cut point outside a zero run is a chunk boundary.
			img, _ := os.ReadFile(path)
			l, err := fschunk.Read(res.FSType, bytes.NewReader(img), int64(len(img)))
			if err != nil {
				t.Fatal(err)
			}
			bounds := map[int64]bool{}
			var zero [][2]int64
			for _, e := range res.Index.Entries {
				bounds[e.Off] = true
				if e.Zero {
					zero = append(zero, [2]int64{e.Off, e.End()})
				}
			}
			hard := fschunk.NewChunker(l, chunk.NewCDC(16<<10, 64<<10, 256<<10, 4096)).HardCuts()
			if len(hard) == 0 {
				t.Fatal("no hard cut points")
			}
			for _, c := range hard {
				inZero := false
				for _, z := range zero {
					inZero = inZero || (c >= z[0] && c <= z[1])
				}
				if !bounds[c] && !inZero {
					t.Fatalf("cut point %d is not a chunk boundary", c)
				}
			}
			// Packing again stores nothing new and gives the same chunks.
			res2, _ := packFile(t, path, st, true)
			if res2.New != 0 || len(res2.Index.Entries) != len(res.Index.Entries) {
				t.Fatalf("second pack: %d new chunks, %d entries (first: %d)", res2.New, len(res2.Index.Entries), len(res.Index.Entries))
			}
		})
	}
}

func runCmd(t *testing.T, name string, args ...string) {
	t.Helper()
	testutil.Tool(t, name)
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, out)
	}
}

// corruptions damage an image's metadata while keeping the magic that identifies it.
var corruptions = map[fstype.Type]map[string]func(img []byte){
	fstype.Ext4: {
		"superblock": func(img []byte) { binary.LittleEndian.PutUint32(img[1024+4:], 0xFFFFFFF0) }, // block count
		"inode table": func(img []byte) {
			gd := img[4096:] // 4 KiB blocks: descriptors in block 1
			table := int64(binary.LittleEndian.Uint32(gd[8:])) * 4096
			for i := int64(0); i < 16*256; i += 256 { // inodes 1..16: root and friends
				copy(img[table+i:], bytes.Repeat([]byte{0xA4, 0x81, 0xEE, 0xEE}, 64))
			}
		},
	},
	fstype.Erofs: {
		"superblock":  func(img []byte) { binary.LittleEndian.PutUint32(img[1024+40:], 0x7FFFFFF0) }, // meta_blkaddr
		"inode table": func(img []byte) { corruptErofsRoot(img) },
	},
	fstype.Squashfs: {
		"superblock": func(img []byte) { binary.LittleEndian.PutUint64(img[64:], 1<<40) }, // inode table start
		"inode table": func(img []byte) {
			start := binary.LittleEndian.Uint64(img[64:])
			binary.LittleEndian.PutUint16(img[start:], 0x7FFF) // first metadata block's length
		},
	},
}

// corruptErofsRoot makes the root directory's inode claim an absurd size.
func corruptErofsRoot(img []byte) {
	meta := int64(binary.LittleEndian.Uint32(img[1024+40:])) << img[1024+12]
	root := meta + int64(binary.LittleEndian.Uint16(img[1024+14:]))*32
	binary.LittleEndian.PutUint32(img[root+8:], 0x7FFFFFF0)
}

// A corrupt or hostile image must not stop pack: it warns once, chunks by content and the
// chunks still reassemble the image exactly.
func TestFSAwareFallsBackOnCorruptMetadata(t *testing.T) {
	tree := t.TempDir()
	writeTree(t, tree, "c", 40, 2)
	for typ, cases := range corruptions {
		path := build(t, typ, tree)
		orig, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for what, corrupt := range cases {
			t.Run(string(typ)+"/"+what, func(t *testing.T) {
				img := bytes.Clone(orig)
				corrupt(img)
				if fstype.Detect(img) != typ {
					t.Fatalf("corruption hid the %s magic", typ)
				}
				bad := filepath.Join(t.TempDir(), "bad")
				if err := os.WriteFile(bad, img, 0o644); err != nil {
					t.Fatal(err)
				}
				st, err := store.CreateDir(t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				defer st.Close()
				res, warnings := packFile(t, bad, st, true)
				if len(warnings) != 1 || !strings.Contains(warnings[0], string(typ)) {
					t.Fatalf("warnings %q, want one naming %s", warnings, typ)
				}
				if k := res.Index.Chunking.Kind; k != chunk.KindCDC {
					t.Fatalf("chunking kind %v after a corrupt image, want cdc", k)
				}
				reassemble(t, res.Index, st, bad)
			})
		}
	}
}

// Streams (stdin, pipes) cannot be read ahead for metadata: content-defined chunking,
// without a warning.
func TestFSAwareStreamUsesCDC(t *testing.T) {
	tree := t.TempDir()
	writeTree(t, tree, "s", 20, 3)
	path := build(t, fstype.Squashfs, tree)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := store.CreateDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	spec, _ := chunk.ParseSpec(chunk.DefaultSpec)
	warned := false
	res, err := Run(context.Background(), io.MultiReader(f), st, Options{
		Name: "s", Spec: spec, FSAware: true, Warn: func(string) { warned = true },
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Index.Chunking.Kind != chunk.KindCDC || warned || res.FSType != fstype.Squashfs {
		t.Fatalf("stream: kind %v, warned %v, type %q", res.Index.Chunking.Kind, warned, res.FSType)
	}
	reassemble(t, res.Index, st, path)
}

// The point of it all: adding files to a tree re-stores less with fs-aware chunking than
// with content-defined chunking, because unchanged files keep their chunks.
func TestFSAwareUpdateStoresLessThanCDC(t *testing.T) {
	v1 := t.TempDir()
	writeTree(t, v1, "a", 150, 4)
	v2 := t.TempDir()
	runCmd(t, "cp", "-a", v1+"/.", v2)
	writeTree(t, filepath.Join(v2, "dir2"), "b", 30, 5) // new files amid the old ones
	for _, typ := range []fstype.Type{fstype.Ext4, fstype.Squashfs} {
		i1, i2 := build(t, typ, v1), build(t, typ, v2)
		stored := map[bool]int64{}
		for _, fsAware := range []bool{false, true} {
			st, err := store.CreateDir(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			packFile(t, i1, st, fsAware)
			res, _ := packFile(t, i2, st, fsAware)
			stored[fsAware] = res.Stored
			st.Close()
		}
		t.Logf("%s: update stores %d bytes with fs-aware chunking, %d with cdc", typ, stored[true], stored[false])
		if stored[true] >= stored[false] {
			t.Errorf("%s: fs-aware update stores %d bytes, not less than cdc's %d", typ, stored[true], stored[false])
		}
	}
}

// A block device is read at random too: its size comes from seeking, and the read position
// the stream continues from must not move.
func TestFSAwareBlockDevice(t *testing.T) {
	if os.Geteuid() != 0 {
		testutil.Missing(t, "attaching a loop device needs root (CI runs as root)")
	}
	testutil.Tool(t, "losetup")
	tree := t.TempDir()
	writeTree(t, tree, "b", 30, 6)
	path := build(t, fstype.Erofs, tree)
	out, err := exec.Command("losetup", "--find", "--show", "--read-only", path).Output()
	if err != nil {
		testutil.Missingf(t, "no loop device available: %v", err)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	st, err := store.CreateDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	res, warnings := packFile(t, dev, st, true)
	if len(warnings) > 0 || res.Index.Chunking.Kind != chunk.KindFS {
		t.Fatalf("block device: kind %v, warnings %q", res.Index.Chunking.Kind, warnings)
	}
	reassemble(t, res.Index, st, path)
}
