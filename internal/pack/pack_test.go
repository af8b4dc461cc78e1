package pack_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/fstype"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/pack"
	"github.com/nowhere-boot/nowhere/internal/store"
)

func randBytes(seed uint64, n int) []byte {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(s).Read(b)
	return b
}

// testImage is 12 MiB: random data, long zero runs, a 1 MiB block that occurs three times
// and some compressible text.
func testImage() []byte {
	img := randBytes(1, 12<<20)
	clear(img[2<<20 : 3<<20])
	clear(img[7<<20+4096 : 7<<20+4096+200<<10])
	dup := randBytes(2, 1<<20)
	for _, at := range []int{4 << 20, 5 << 20, 9 << 20} {
		copy(img[at:], dup)
	}
	copy(img[10<<20:], bytes.Repeat([]byte("compressible text "), 60000))
	return img
}

func defaultSpec(t testing.TB) chunk.Spec {
	sp, err := chunk.ParseSpec(chunk.DefaultSpec)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

func newStore(t *testing.T) *store.Dir {
	t.Helper()
	d, err := store.CreateDir(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func run(t *testing.T, r io.Reader, w store.Writer, opt pack.Options) *pack.Result {
	t.Helper()
	if opt.Name == "" {
		opt.Name = "img"
	}
	if opt.Spec.Kind == 0 {
		opt.Spec = defaultSpec(t)
	}
	res, err := pack.Run(context.Background(), r, w, opt)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// checkResult verifies that the counters add up, against the index and the store.
func checkResult(t *testing.T, res *pack.Result, img []byte) {
	t.Helper()
	ix := res.Index
	var chunks, zero int
	var zeroBytes int64
	ids := map[chunk.ID]bool{}
	for _, e := range ix.Entries {
		if e.Zero {
			zero++
			zeroBytes += int64(e.Len)
			if !bytes.Equal(img[e.Off:e.End()], make([]byte, e.Len)) {
				t.Fatalf("zero entry [%d,%d) covers non-zero bytes", e.Off, e.End())
			}
			continue
		}
		chunks++
		ids[e.ID] = true
		if chunk.Sum(img[e.Off:e.End()]) != e.ID {
			t.Fatalf("entry [%d,%d): ID is not the hash of those image bytes", e.Off, e.End())
		}
	}
	switch {
	case res.Chunks != chunks:
		t.Errorf("Chunks %d, index has %d data entries", res.Chunks, chunks)
	case res.Zero != zero || res.ZeroBytes != zeroBytes:
		t.Errorf("Zero %d/%d bytes, index has %d/%d", res.Zero, res.ZeroBytes, zero, zeroBytes)
	case res.Unique != len(ids):
		t.Errorf("Unique %d, index has %d distinct IDs", res.Unique, len(ids))
	case res.New+res.Existing != res.Unique:
		t.Errorf("New %d + Existing %d != Unique %d", res.New, res.Existing, res.Unique)
	case res.Read != int64(len(img)) || ix.Size != int64(len(img)):
		t.Errorf("Read %d, index size %d, image %d bytes", res.Read, ix.Size, len(img))
	}
	file, err := index.Encode(ix)
	if err != nil || !bytes.Equal(file, res.IndexFile) {
		t.Errorf("IndexFile is not the encoding of Index: %v", err)
	}
}

// storedChunks returns the chunk files in the store and their total size.
func storedChunks(t *testing.T, d *store.Dir) (map[chunk.ID]int64, int64) {
	t.Helper()
	m := map[chunk.ID]int64{}
	var total int64
	if err := d.Chunks(context.Background(), func(id chunk.ID, n int64) error { m[id] = n; total += n; return nil }); err != nil {
		t.Fatal(err)
	}
	return m, total
}

func TestPackTwiceStoresNothingNew(t *testing.T) {
	img := testImage()
	d := newStore(t)
	first := run(t, bytes.NewReader(img), d, pack.Options{})
	checkResult(t, first, img)
	if first.New != first.Unique || first.Existing != 0 || first.Unique >= first.Chunks {
		t.Fatalf("first pack: New %d Existing %d Unique %d Chunks %d (the image repeats a block)", first.New, first.Existing, first.Unique, first.Chunks)
	}
	files, total := storedChunks(t, d)
	if len(files) != first.New || total != first.Stored {
		t.Fatalf("store holds %d chunk files, %d bytes; pack reported %d new, %d bytes", len(files), total, first.New, first.Stored)
	}
	for _, e := range first.Index.Entries {
		if !e.Zero && files[e.ID] != int64(e.Stored) {
			t.Fatalf("entry Stored %d, chunk file has %d bytes", e.Stored, files[e.ID])
		}
	}

	second := run(t, bytes.NewReader(img), d, pack.Options{})
	checkResult(t, second, img)
	if second.New != 0 || second.Stored != 0 || second.Existing != first.Unique {
		t.Fatalf("second pack of the same bytes: New %d, Stored %d, Existing %d (first Unique %d)", second.New, second.Stored, second.Existing, first.Unique)
	}
	if first.Index.Version != 1 || second.Index.Version != 2 {
		t.Fatalf("versions %d then %d, want 1 then 2", first.Index.Version, second.Index.Version)
	}
	if !slices.Equal(first.Index.Entries, second.Index.Entries) {
		t.Fatal("the same image packed twice gave different entries")
	}
	if after, _ := storedChunks(t, d); len(after) != len(files) {
		t.Fatalf("second pack added %d chunk files", len(after)-len(files))
	}
	// A different store, fewer workers: the same chunks.
	other := run(t, bytes.NewReader(img), newStore(t), pack.Options{Workers: 1})
	if !slices.Equal(first.Index.Entries, other.Index.Entries) {
		t.Fatal("packing into another store with one worker gave different entries")
	}
}

func TestPackPublishes(t *testing.T) {
	ctx := context.Background()
	img := testImage()[:3<<20]
	d := newStore(t)
	created := time.Date(2026, 11, 25, 10, 0, 0, 123456789, time.FixedZone("x", 3600))
	expires := time.Date(2027, 11, 25, 10, 0, 0, 0, time.UTC)
	res := run(t, bytes.NewReader(img), d, pack.Options{Name: "deb", Created: created, Expires: expires})
	for v := uint64(2); v <= 3; v++ {
		if r := run(t, bytes.NewReader(img), d, pack.Options{Name: "deb"}); r.Index.Version != v {
			t.Fatalf("pack %d got version %d", v, r.Index.Version)
		}
	}
	if r := run(t, bytes.NewReader(img), d, pack.Options{Name: "deb", Version: 10}); r.Index.Version != 10 {
		t.Fatalf("explicit version: %d", r.Index.Version)
	}
	if v, err := pack.NextVersion(ctx, d, "deb"); err != nil || v != 11 {
		t.Fatalf("NextVersion = %d, %v; want 11", v, err)
	}
	if v, err := pack.NextVersion(ctx, d, "other"); err != nil || v != 1 {
		t.Fatalf("NextVersion of a new image = %d, %v", v, err)
	}
	// The first index as written.
	file, err := d.File(ctx, store.IndexPath("deb", 1), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(file, res.IndexFile) {
		t.Fatal("index file in the store differs from Result.IndexFile")
	}
	ix, err := index.Decode(file)
	if err != nil {
		t.Fatal(err)
	}
	if ix.Name != "deb" || ix.Version != 1 || !ix.Created.Equal(created.Truncate(time.Second)) || !ix.Expires.Equal(expires) ||
		ix.Chunking != (chunk.Params{Kind: chunk.KindCDC, Min: 16 << 10, Avg: 64 << 10, Max: 256 << 10, Align: 4096}) {
		t.Fatalf("index header: %s v%d created %s expires %s %s", ix.Name, ix.Version, ix.Created, ix.Expires, ix.Chunking)
	}
	// latest points at the newest version, pinned by its hash.
	b, err := d.File(ctx, store.LatestPath("deb"), index.MaxPointer)
	if err != nil {
		t.Fatal(err)
	}
	p, err := index.ParsePointer(b)
	if err != nil {
		t.Fatal(err)
	}
	newest, _ := d.File(ctx, store.IndexPath("deb", 10), 1<<30)
	if p.Name != "deb" || p.Version != 10 || !p.Matches(newest) {
		t.Fatalf("latest = %+v; want version 10 matching its index", p)
	}
	noTemps(t, d.Path())
}

func noTemps(t *testing.T, dir string) {
	t.Helper()
	_ = filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(e.Name(), ".tmp-") {
			t.Errorf("temporary file left: %s", p)
		}
		return nil
	})
}

// A pipe (stdin, a block device read in pieces) gives the same result as a file.
func TestPackUnknownSizeReader(t *testing.T) {
	img := testImage()
	want := run(t, bytes.NewReader(img), newStore(t), pack.Options{})
	pr, pw := io.Pipe()
	go func() {
		rest := img
		for i := 1; len(rest) > 0; i++ {
			n := min(len(rest), (i*7919)%70000+1)
			if _, err := pw.Write(rest[:n]); err != nil {
				return
			}
			rest = rest[n:]
		}
		pw.Close()
	}()
	got := run(t, pr, newStore(t), pack.Options{})
	checkResult(t, got, img)
	if !slices.Equal(got.Index.Entries, want.Index.Entries) {
		t.Fatal("packing from a pipe gave different entries")
	}
	half := run(t, iotest.HalfReader(bytes.NewReader(img)), newStore(t), pack.Options{})
	if !slices.Equal(half.Index.Entries, want.Index.Entries) {
		t.Fatal("packing from short reads gave different entries")
	}
}

// sparseImage is 256 MiB, mostly zeros, produced without holding it in memory.
func sparseImage() io.Reader {
	return io.MultiReader(
		bytes.NewReader(randBytes(3, 1<<20)),
		io.LimitReader(zeroes{}, 100<<20),
		bytes.NewReader(randBytes(4, 1<<20)),
		io.LimitReader(zeroes{}, 154<<20),
	)
}

type zeroes struct{}

func (zeroes) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestPackMostlyZeros(t *testing.T) {
	d := newStore(t)
	res := run(t, sparseImage(), d, pack.Options{})
	t.Logf("256 MiB image: %d chunks, %d zero entries covering %d MiB, %d KiB stored", res.Chunks, res.Zero, res.ZeroBytes>>20, res.Stored>>10)
	if res.Read != 256<<20 || res.Index.Size != 256<<20 {
		t.Fatalf("read %d bytes", res.Read)
	}
	if res.ZeroBytes != 254<<20 || res.Zero < 2 {
		t.Fatalf("zero runs cover %d bytes in %d entries, want 254 MiB", res.ZeroBytes, res.Zero)
	}
	if res.Stored > 2<<20+64<<10 {
		t.Fatalf("%d bytes stored for 2 MiB of data", res.Stored)
	}
	if _, total := storedChunks(t, d); total != res.Stored {
		t.Fatalf("store holds %d bytes, pack said %d", total, res.Stored)
	}
	for _, e := range res.Index.Entries {
		if e.Zero && e.Len > chunk.MaxZeroRun {
			t.Fatalf("zero entry of %d bytes", e.Len)
		}
	}
}

// failAfter returns n bytes of img and then an error, like a disk failing mid-read.
type failAfter struct {
	r   io.Reader
	n   int64
	err error
}

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, f.err
	}
	if int64(len(p)) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= int64(n)
	return n, err
}

func TestPackReadErrorPublishesNothing(t *testing.T) {
	ctx := context.Background()
	img := testImage()
	d := newStore(t)
	good := run(t, bytes.NewReader(img), d, pack.Options{})
	latest, _ := d.File(ctx, store.LatestPath("img"), index.MaxPointer)
	filesBefore, _ := d.Files(ctx, "images/")
	boom := errors.New("I/O error on /dev/sdz")
	for _, n := range []int64{0, 1000, 3 << 20, int64(len(img)) - 1} {
		changed := slices.Clone(img)
		changed[len(changed)-1] ^= 1 // new content, so the failed pack would have new chunks
		res, err := pack.Run(ctx, &failAfter{bytes.NewReader(changed), n, boom}, d, pack.Options{Name: "img", Spec: defaultSpec(t)})
		if !errors.Is(err, boom) || res != nil {
			t.Fatalf("read error after %d bytes: %v, result %v; want the reader's error", n, err, res != nil)
		}
		files, _ := d.Files(ctx, "images/")
		if !slices.Equal(files, filesBefore) {
			t.Fatalf("after a failed pack the store lists %q, before %q", files, filesBefore)
		}
		if b, _ := d.File(ctx, store.LatestPath("img"), index.MaxPointer); !bytes.Equal(b, latest) {
			t.Fatal("a failed pack moved latest")
		}
		noTemps(t, d.Path())
	}
	if v, _ := pack.NextVersion(ctx, d, "img"); v != good.Index.Version+1 {
		t.Fatalf("next version %d after failed packs", v)
	}
}

func TestPackRejectsBadOptions(t *testing.T) {
	d := newStore(t)
	if _, err := pack.Run(context.Background(), bytes.NewReader([]byte("x")), d, pack.Options{Name: "../x", Spec: defaultSpec(t)}); err == nil {
		t.Fatal("bad name accepted")
	}
	if _, err := pack.Run(context.Background(), bytes.NewReader([]byte("x")), d, pack.Options{Name: "x"}); err == nil {
		t.Fatal("empty chunking spec accepted")
	}
	if files, _ := d.Files(context.Background(), ""); len(files) != 0 {
		t.Fatalf("a refused pack wrote %q", files)
	}
}

func TestPackCancelled(t *testing.T) {
	d := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := pack.Run(ctx, io.LimitReader(zeroes{}, 1<<30), d, pack.Options{Name: "x", Spec: defaultSpec(t)}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled pack: %v", err)
	}
	if files, _ := d.Files(context.Background(), ""); len(files) != 0 {
		t.Fatalf("a cancelled pack wrote %q", files)
	}
}

func TestPackSmallAndEmpty(t *testing.T) {
	for _, img := range [][]byte{nil, {1}, make([]byte, 10), randBytes(5, 4097), make([]byte, 4<<20)} {
		res := run(t, bytes.NewReader(img), newStore(t), pack.Options{})
		checkResult(t, res, img)
	}
}

// The chunk alignment follows the filesystem: byte-level for squashfs, 4 KiB otherwise.
func TestPackAlignmentFollowsFilesystem(t *testing.T) {
	base := randBytes(6, 2<<20)
	squash := slices.Clone(base)
	copy(squash, "hsqs")
	ext4 := slices.Clone(base)
	binary.LittleEndian.PutUint16(ext4[1024+56:], 0xEF53)
	for _, c := range []struct {
		img   []byte
		typ   fstype.Type
		align uint32
	}{{squash, fstype.Squashfs, 1}, {ext4, fstype.Ext4, 4096}, {base, fstype.Unknown, 4096}} {
		res := run(t, bytes.NewReader(c.img), newStore(t), pack.Options{})
		if res.FSType != c.typ || res.Index.Chunking.Align != c.align {
			t.Errorf("%q image: type %q, align %d; want %q, %d", c.typ, res.FSType, res.Index.Chunking.Align, c.typ, c.align)
		}
	}
	// An explicit alignment or fixed chunking is kept.
	sp, _ := chunk.ParseSpec("fixed:64K")
	if res := run(t, bytes.NewReader(squash), newStore(t), pack.Options{Spec: sp}); res.Index.Chunking.Kind != chunk.KindFixed {
		t.Errorf("fixed spec packed as %s", res.Index.Chunking)
	}
}

func TestPackProgress(t *testing.T) {
	img := testImage()
	var last int64 = -1
	calls := 0
	run(t, bytes.NewReader(img), newStore(t), pack.Options{Progress: func(n int64) {
		if n < last {
			t.Errorf("progress went back from %d to %d", last, n)
		}
		last = n
		calls++
	}})
	if last != int64(len(img)) || calls < 10 {
		t.Fatalf("progress ended at %d after %d calls, image %d bytes", last, calls, len(img))
	}
}
