package store_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/image"
	"github.com/nowhere-boot/nowhere/internal/index"
	"github.com/nowhere-boot/nowhere/internal/store"
)

// chunkBytesOnDisk adds up the chunk files under dir.
func chunkBytesOnDisk(t testing.TB, dir string) (n int, total int64) {
	t.Helper()
	err := filepath.WalkDir(filepath.Join(dir, "chunks"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || !strings.HasSuffix(p, ".cacnk") {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		n++
		total += info.Size()
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return n, total
}

func openCache(t testing.TB, dir string, quota int64, log func(string, ...any), m store.Observer) *store.DiskCache {
	t.Helper()
	c, err := store.OpenDiskCache(dir, quota, log, m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestDiskCacheStaysWithinQuota(t *testing.T) {
	dir, ix, data := mirrorImage(t, 4<<20, 20)
	a := startMirror(t, dir)
	set := newSet(t, store.MirrorOptions{}, a.store(t))
	const quota = 512 << 10
	cdir := t.TempDir()
	m := newObserver()
	c := openCache(t, cdir, quota, t.Logf, m)
	f := c.Fetcher(set)
	for _, ref := range refsOf(ix) {
		got, err := f.Fetch(context.Background(), ref)
		if err != nil || chunk.Sum(got.Plain) != ref.ID {
			t.Fatalf("fetch %s: %v", ref.ID, err)
		}
		if st := c.Stats(); st.Bytes > quota {
			t.Fatalf("cache holds %d bytes, quota %d", st.Bytes, quota)
		}
	}
	n, onDisk := chunkBytesOnDisk(t, cdir)
	if onDisk > quota || n == 0 {
		t.Fatalf("%d chunk files, %d bytes on disk; quota %d", n, onDisk, quota)
	}
	if st := c.Stats(); st.Bytes != onDisk || st.Chunks != n {
		t.Fatalf("stats say %d chunks, %d bytes; disk has %d, %d", st.Chunks, st.Bytes, n, onDisk)
	}
	// The whole image still reads right through a cache that is far too small for it.
	sum, _ := readImage(t, ix, f, nil)
	if sum != sha256.Sum256(data) {
		t.Fatal("content read through the cache differs")
	}
	if m.CacheMisses() == 0 {
		t.Error("no cache misses counted")
	}
}

func TestDiskCacheLRUOrderSurvivesRestart(t *testing.T) {
	dir, ix, _ := mirrorImage(t, 1<<20, 21)
	a := startMirror(t, dir)
	set := newSet(t, store.MirrorOptions{}, a.store(t))
	cdir := t.TempDir()
	c, err := store.OpenDiskCache(cdir, 0, t.Logf, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := c.Fetcher(set)
	refs := refsOf(ix)[:4]
	for _, ref := range refs { // fetched in order 0 1 2 3
		if _, err := f.Fetch(context.Background(), ref); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond) // distinct times on filesystems with coarse ones
	}
	// Use 0 and 1 again: now 2 is the least recently used, then 3.
	for _, ref := range refs[:2] {
		if _, err := f.Fetch(context.Background(), ref); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.Close()

	size := func(r chunk.Ref) int64 {
		st, err := os.Stat(filepath.Join(cdir, store.ChunkPath(r.ID)))
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}
	// Restart with a quota that fits the three most recently used: 2 must go.
	quota := size(refs[0]) + size(refs[1]) + size(refs[3])
	openCache(t, cdir, quota, t.Logf, nil)
	for i, ref := range refs {
		_, err := os.Stat(filepath.Join(cdir, store.ChunkPath(ref.ID)))
		if kept := err == nil; kept != (i != 2) {
			t.Errorf("chunk %d (used order 2 3 0 1): kept=%v after restart", i, kept)
		}
	}
}

func TestDiskCacheDropsCorruptChunk(t *testing.T) {
	dir, ix, _ := mirrorImage(t, 1<<20, 22)
	a := startMirror(t, dir)
	set := newSet(t, store.MirrorOptions{}, a.store(t))
	cdir := t.TempDir()
	var log logRecorder
	c := openCache(t, cdir, 0, log.logf, nil)
	f := c.Fetcher(set)
	ref := refsOf(ix)[0]
	if _, err := f.Fetch(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(cdir, store.ChunkPath(ref.ID))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	before := a.requests.Load()
	got, err := f.Fetch(context.Background(), ref)
	if err != nil || chunk.Sum(got.Plain) != ref.ID {
		t.Fatalf("fetch after corrupting the cached copy: %v", err)
	}
	if a.requests.Load() != before+1 {
		t.Errorf("corrupt cached chunk not fetched again from the mirror")
	}
	if log.find("dropping corrupt chunk", ref.ID.String()) == "" {
		t.Errorf("no log line about the corrupt chunk:\n%s", &log)
	}
	if again, _ := os.ReadFile(p); string(again) == string(b) {
		t.Error("the corrupt copy is still in the cache")
	}
}

func TestDiskCacheServesImageOffline(t *testing.T) {
	dir, ix, data := mirrorImage(t, 2<<20, 23)
	a := startMirror(t, dir)
	cdir := t.TempDir()
	loc := image.Location{Store: a.URL(), Name: "test"}

	open := func() (*store.MirrorSet, *store.DiskCache, store.Store) {
		set := newSet(t, store.MirrorOptions{Wait: store.Policy{Timeout: 2 * time.Second}}, a.store(t))
		c, err := store.OpenDiskCache(cdir, 64<<20, t.Logf, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return set, c, c.Store(set)
	}
	set, c, s := open()
	ix1, _, err := image.Load(context.Background(), s, loc, store.Policy{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if sum, _ := readImage(t, ix1, c.Fetcher(set), nil); sum != sha256.Sum256(data) {
		t.Fatal("online read differs")
	}
	a.kill()
	set.Close()

	set, c, s = open() // a restart with every mirror gone
	ix2, _, err := image.Load(context.Background(), s, loc, store.Policy{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("opening the image offline: %v", err)
	}
	if ix2.Version != ix.Version || len(ix2.Entries) != len(ix.Entries) {
		t.Fatal("cached index differs")
	}
	if sum, st := readImage(t, ix2, c.Fetcher(set), nil); sum != sha256.Sum256(data) || st.Errors != 0 {
		t.Fatal("offline read differs")
	}
}

// TestDiskCacheFallbackStoreKeepsOnlyWhatItIsGiven: a FallbackStore keeps no copy of the
// files the mirrors serve; offline it serves the copies given to KeepFile, and only those.
func TestDiskCacheFallbackStoreKeepsOnlyWhatItIsGiven(t *testing.T) {
	dir, _, _ := mirrorImage(t, 1<<20, 25)
	a := startMirror(t, dir)
	cdir := t.TempDir()
	c := openCache(t, cdir, 0, t.Logf, nil)
	loc := image.Location{Store: a.URL(), Name: "test"}
	set := newSet(t, store.MirrorOptions{Wait: store.Policy{Timeout: 2 * time.Second}}, a.store(t))
	s := c.FallbackStore(set)
	load := func() (*index.Index, error) {
		ix, _, err := image.Load(context.Background(), s, loc, store.Policy{Timeout: 5 * time.Second})
		return ix, err
	}
	ix, err := load()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(cdir, store.LatestPath("test"))); !os.IsNotExist(err) {
		t.Fatalf("the fallback store kept the pointer it passed on (stat: %v)", err)
	}
	a.kill()
	if _, err := load(); err == nil {
		t.Fatal("offline with nothing kept, the image loaded")
	}
	if err := c.KeepFile(context.Background(), "chunks/x", []byte("x")); err == nil {
		t.Error("KeepFile kept a file outside images/")
	}
	for _, name := range []string{store.LatestPath("test"), store.IndexPath("test", ix.Version)} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.KeepFile(context.Background(), name, b); err != nil {
			t.Fatal(err)
		}
	}
	got, err := load()
	if err != nil {
		t.Fatalf("offline with the pointer and index kept: %v", err)
	}
	if got.Version != ix.Version || len(got.Entries) != len(ix.Entries) {
		t.Errorf("offline: version %d with %d entries, want %d with %d", got.Version, len(got.Entries), ix.Version, len(ix.Entries))
	}
}

func TestDiskCachePruneAndVerify(t *testing.T) {
	dir, ix, _ := mirrorImage(t, 1<<20, 24)
	a := startMirror(t, dir)
	set := newSet(t, store.MirrorOptions{}, a.store(t))
	cdir := t.TempDir()
	c := openCache(t, cdir, 0, t.Logf, nil)
	f := c.Fetcher(set)
	for _, ref := range refsOf(ix) {
		if _, err := f.Fetch(context.Background(), ref); err != nil {
			t.Fatal(err)
		}
	}
	// Corrupt one file behind the cache's back; Verify finds and drops it.
	ref := refsOf(ix)[3]
	p := filepath.Join(cdir, store.ChunkPath(ref.ID))
	if err := os.WriteFile(p, []byte("not zstd"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad, err := c.Verify(context.Background())
	if err != nil || bad != 1 {
		t.Fatalf("verify: %d bad, %v; want 1", bad, err)
	}
	st := c.Stats()
	n, freed := c.Prune(st.Bytes / 2)
	if n == 0 || freed == 0 {
		t.Fatal("prune removed nothing")
	}
	if _, onDisk := chunkBytesOnDisk(t, cdir); onDisk > st.Bytes/2 {
		t.Fatalf("%d bytes left after pruning to %d", onDisk, st.Bytes/2)
	}
	c.Prune(0)
	if n, _ := chunkBytesOnDisk(t, cdir); n != 0 {
		t.Fatalf("%d chunks left after pruning to 0", n)
	}
}

// TestDiskCacheSkipsFilesNoChunkCanBe: a chunk file with a huge apparent size (sparse) or
// none at all is not counted against the quota at start (it would have evicted every real
// chunk, silently): it is removed, with one log line saying so, and the real chunks stay.
func TestDiskCacheSkipsFilesNoChunkCanBe(t *testing.T) {
	dir, ix, _ := mirrorImage(t, 1<<20, 23)
	a := startMirror(t, dir)
	set := newSet(t, store.MirrorOptions{}, a.store(t))
	cdir := t.TempDir()
	c := openCache(t, cdir, 4<<20, t.Logf, nil)
	f := c.Fetcher(set)
	for _, ref := range refsOf(ix) {
		if _, err := f.Fetch(context.Background(), ref); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	nReal, _ := chunkBytesOnDisk(t, cdir)
	huge := chunk.Sum([]byte("not a chunk of this image"))
	empty := chunk.Sum([]byte("nor this"))
	for id, size := range map[chunk.ID]int64{huge: 1 << 40, empty: 0} {
		p := filepath.Join(cdir, store.ChunkPath(id))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, size); err != nil {
			t.Fatal(err)
		}
	}
	var logged strings.Builder
	c = openCache(t, cdir, 4<<20, func(f string, a ...any) { logged.WriteString(fmt.Sprintf(f, a...) + "\n") }, nil)
	if st := c.Stats(); st.Chunks != nReal {
		t.Errorf("the cache counts %d chunks at start, want the %d real ones", st.Chunks, nReal)
	}
	if n, _ := chunkBytesOnDisk(t, cdir); n != nReal {
		t.Errorf("%d chunk files on disk after start, want the %d real ones (the bogus two removed, none evicted)", n, nReal)
	}
	if !strings.Contains(logged.String(), "removed 2 files whose size no chunk file can have") {
		t.Errorf("log: %q", logged.String())
	}
}
