package store_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/nowhere-boot/nowhere/internal/chunk"
	"github.com/nowhere-boot/nowhere/internal/store"
)

func TestPaths(t *testing.T) {
	id := chunk.Sum([]byte("nowhere"))
	want := "chunks/" + id.String()[:4] + "/" + id.String() + ".cacnk"
	if got := store.ChunkPath(id); got != want {
		t.Fatalf("ChunkPath = %q, want %q", got, want)
	}
	if got := store.IndexPath("deb", 12); got != "images/deb/12.index" {
		t.Fatalf("IndexPath = %q", got)
	}
	if got := store.LatestPath("deb"); got != "images/deb/latest" {
		t.Fatalf("LatestPath = %q", got)
	}
}

// noTemps fails if a temporary file was left anywhere in the store.
func noTemps(t *testing.T, dir string) {
	t.Helper()
	_ = filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(e.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", p)
		}
		return nil
	})
}

func TestDirPutChunk(t *testing.T) {
	ctx := context.Background()
	d := newDir(t)
	c := newChunk(1, 30<<10)
	if _, ok, err := d.HasChunk(ctx, c.ref.ID); ok || err != nil {
		t.Fatalf("HasChunk before put: %v, %v", ok, err)
	}
	wrote, err := d.PutChunk(ctx, c.ref.ID, c.raw)
	if !wrote || err != nil {
		t.Fatalf("first PutChunk: %v, %v", wrote, err)
	}
	p := filepath.Join(d.Path(), store.ChunkPath(c.ref.ID))
	if b, err := os.ReadFile(p); err != nil || !bytes.Equal(b, c.raw) {
		t.Fatalf("chunk file at %s: %v", p, err)
	}
	size, ok, err := d.HasChunk(ctx, c.ref.ID)
	if !ok || err != nil || size != int64(len(c.raw)) {
		t.Fatalf("HasChunk after put: %d, %v, %v", size, ok, err)
	}
	// Idempotent: a second put writes nothing, even with other bytes for the same name.
	if wrote, err := d.PutChunk(ctx, c.ref.ID, []byte("other")); wrote || err != nil {
		t.Fatalf("second PutChunk: %v, %v", wrote, err)
	}
	if b, _ := os.ReadFile(p); !bytes.Equal(b, c.raw) {
		t.Fatal("second PutChunk changed the file")
	}
	noTemps(t, d.Path())
}

func TestDirHasChunkIgnoresEmptyFiles(t *testing.T) {
	ctx := context.Background()
	d := newDir(t)
	c := newChunk(2, 1000)
	p := filepath.Join(d.Path(), store.ChunkPath(c.ref.ID))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, nil, 0o644); err != nil { // what a crash can leave
		t.Fatal(err)
	}
	if _, ok, err := d.HasChunk(ctx, c.ref.ID); ok || err != nil {
		t.Fatalf("empty chunk file counts as stored: %v, %v", ok, err)
	}
	if wrote, err := d.PutChunk(ctx, c.ref.ID, c.raw); !wrote || err != nil {
		t.Fatalf("PutChunk over an empty file: %v, %v", wrote, err)
	}
	if b, _ := os.ReadFile(p); !bytes.Equal(b, c.raw) {
		t.Fatal("empty file not replaced")
	}
}

// Writers racing on one chunk and readers reading it meanwhile: every read sees nothing
// or the whole chunk, never a part.
func TestDirPutChunkAtomic(t *testing.T) {
	ctx := context.Background()
	d := newDir(t)
	for round := 0; round < 20; round++ {
		c := newChunk(uint64(100+round), 256<<10)
		var wg sync.WaitGroup
		var wrote sync.Map
		stop := make(chan struct{})
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, err := d.PutChunk(ctx, c.ref.ID, c.raw)
				if err != nil {
					t.Error(err)
				}
				if ok {
					wrote.Store(w, true)
				}
			}()
		}
		var readers sync.WaitGroup
		for r := 0; r < 2; r++ {
			readers.Add(1)
			go func() {
				defer readers.Done()
				for i := 0; i < 10000; i++ {
					raw, err := d.Chunk(ctx, c.ref)
					if err == nil && !bytes.Equal(raw, c.raw) {
						t.Errorf("read %d bytes of a chunk being written: a partial file was visible", len(raw))
						return
					}
					if err != nil && !errors.Is(err, store.ErrNotFound) {
						t.Error(err)
						return
					}
					select {
					case <-stop:
						return
					default:
					}
				}
			}()
		}
		wg.Wait()
		close(stop)
		readers.Wait()
		if raw, err := d.Chunk(ctx, c.ref); err != nil || !bytes.Equal(raw, c.raw) {
			t.Fatalf("after racing writers: %v", err)
		}
	}
	noTemps(t, d.Path())
}

// PutFile replaces a file atomically: readers see the old or the new content, whole.
func TestDirPutFileAtomic(t *testing.T) {
	ctx := context.Background()
	d := newDir(t)
	a, b := bytes.Repeat([]byte("A"), 300<<10), bytes.Repeat([]byte("B"), 200<<10)
	if err := d.PutFile(ctx, "images/x/latest", a); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for r := 0; r < 2; r++ {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for i := 0; i < 100000; i++ {
				got, err := d.File(ctx, "images/x/latest", 1<<20)
				if err != nil || !(bytes.Equal(got, a) || bytes.Equal(got, b)) {
					t.Errorf("read %d bytes (%v): neither the old nor the new file", len(got), err)
					return
				}
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
	}
	for i := 0; i < 50; i++ {
		next := a
		if i%2 == 0 {
			next = b
		}
		if err := d.PutFile(ctx, "images/x/latest", next); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	readers.Wait()
	noTemps(t, d.Path())
}

func TestDirListing(t *testing.T) {
	ctx := context.Background()
	d := newDir(t)
	for _, name := range []string{"images/a/1.index", "images/a/latest", "images/b/2.index", "mirrors"} {
		if err := d.PutFile(ctx, name, []byte(name)); err != nil {
			t.Fatal(err)
		}
	}
	cs := []testChunk{newChunk(1, 100), newChunk(2, 2000), newChunk(3, 30000)}
	for _, c := range cs {
		put(t, d, c)
	}
	// Things that are not metadata files or not chunks in their place.
	junk := map[string]string{
		"images/a/.tmp-latest-0123":                          "half written",
		"chunks/0000/" + cs[0].ref.ID.String() + ".cacnk":    "misplaced", // wrong directory
		"chunks/" + cs[1].ref.ID.String()[:4] + "/notes.txt": "not a chunk",
		"chunks/" + cs[1].ref.ID.String()[:4] + "/zz.cacnk":  "bad name",
	}
	for name, content := range junk {
		p := filepath.Join(d.Path(), name)
		_ = os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for prefix, want := range map[string][]string{
		"images/":         {"images/a/1.index", "images/a/latest", "images/b/2.index"},
		"images/a/":       {"images/a/1.index", "images/a/latest"},
		"images/a":        {"images/a/1.index", "images/a/latest"},
		"":                {"images/a/1.index", "images/a/latest", "images/b/2.index", "mirrors"},
		"images/missing/": nil,
	} {
		got, err := d.Files(ctx, prefix)
		if err != nil {
			t.Fatalf("Files(%q): %v", prefix, err)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("Files(%q) = %q, want %q", prefix, got, want)
		}
	}
	found := map[chunk.ID]int64{}
	if err := d.Chunks(ctx, func(id chunk.ID, size int64) error { found[id] = size; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(found) != len(cs) {
		t.Fatalf("Chunks listed %d chunks, want %d: %v", len(found), len(cs), found)
	}
	for _, c := range cs {
		if found[c.ref.ID] != int64(len(c.raw)) {
			t.Errorf("chunk %s: size %d, want %d", c.ref.ID, found[c.ref.ID], len(c.raw))
		}
	}
	// The callback's error stops the walk and comes back.
	stopErr := errors.New("stop")
	n := 0
	if err := d.Chunks(ctx, func(chunk.ID, int64) error { n++; return stopErr }); !errors.Is(err, stopErr) || n != 1 {
		t.Fatalf("Chunks with a failing callback: %v after %d calls", err, n)
	}
	if err := d.RemoveChunk(ctx, cs[0].ref.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := d.HasChunk(ctx, cs[0].ref.ID); ok {
		t.Fatal("chunk still there after RemoveChunk")
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	// An empty store lists nothing, without error.
	e := newDir(t)
	if err := e.Chunks(ctx, func(chunk.ID, int64) error { return errors.New("called") }); err != nil {
		t.Fatalf("Chunks of an empty store: %v", err)
	}
	if f, err := e.Files(ctx, "images/"); err != nil || len(f) != 0 {
		t.Fatalf("Files of an empty store: %v, %v", f, err)
	}
}

// Names from indexes and users cannot reach outside the store: not with "..", not with an
// absolute path, not through a symlink.
func TestDirNoEscape(t *testing.T) {
	ctx := context.Background()
	parent := t.TempDir()
	secret := filepath.Join(parent, "secret")
	if err := os.WriteFile(secret, []byte("outside the store"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(parent, "outside"), 0o755); err != nil {
		t.Fatal(err)
	}
	d, err := store.CreateDir(filepath.Join(parent, "store"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := os.MkdirAll(filepath.Join(d.Path(), "images/a"), 0o755); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		"images/a/latest":  secret,                           // absolute link out
		"images/a/1.index": "../../../secret",                // relative link out
		"images/out":       filepath.Join(parent, "outside"), // a directory out
	} {
		if err := os.Symlink(target, filepath.Join(d.Path(), link)); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"../secret", "images/../../secret", secret, "images/a/latest", "images/a/1.index",
		"./../secret", "images/out/../../secret"} {
		b, err := d.File(ctx, name, 1<<20)
		if err == nil || bytes.Contains(b, []byte("outside")) {
			t.Errorf("File(%q) read outside the store: %q", name, b)
		}
	}
	for _, name := range []string{"../evil", "images/out/evil", "images/../../evil"} {
		if err := d.PutFile(ctx, name, []byte("x")); err == nil {
			t.Errorf("PutFile(%q) succeeded", name)
		}
	}
	for _, p := range []string{filepath.Join(parent, "evil"), filepath.Join(parent, "outside", "evil")} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("a write escaped the store: %s exists", p)
		}
	}
	// Listing does not wander out through the directory link either.
	files, err := d.Files(ctx, "images/")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.Contains(f, "out/") {
			t.Errorf("Files followed a link out: %s", f)
		}
	}
}

func TestOpenDirErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := store.OpenDir(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "missing") ||
		!strings.Contains(err.Error(), "no such file") {
		t.Errorf("OpenDir of a missing directory: %v", err)
	}
	f := filepath.Join(dir, "file")
	_ = os.WriteFile(f, nil, 0o644)
	if _, err := store.OpenDir(f); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("OpenDir of a file: %v", err)
	}
	if _, err := store.CreateDir(filepath.Join(f, "sub")); err == nil {
		t.Error("CreateDir under a file succeeded")
	}
	d, err := store.CreateDir(filepath.Join(dir, "a", "b", "c"))
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	if st, err := os.Stat(filepath.Join(dir, "a", "b", "c")); err != nil || !st.IsDir() {
		t.Fatal("CreateDir did not create the directory")
	}
}

// Chunk writes stay inside the store when a fan-out directory (chunks/XXXX) or chunks/
// itself is a symlink out of it: they fail, and nothing appears outside.
func TestDirChunkWritesNoEscape(t *testing.T) {
	ctx := context.Background()
	parent := t.TempDir()
	outside := filepath.Join(parent, "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	c := newChunk(7, 5000)
	name := filepath.Base(store.ChunkPath(c.ref.ID))
	// A chunk file outside, where the link leads: it must not count as stored either.
	if err := os.WriteFile(filepath.Join(outside, name), c.raw, 0o644); err != nil {
		t.Fatal(err)
	}

	d, err := store.CreateDir(filepath.Join(parent, "fanout-link"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	fan := filepath.Join(d.Path(), filepath.Dir(store.ChunkPath(c.ref.ID)))
	if err := os.MkdirAll(filepath.Dir(fan), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, fan); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := d.HasChunk(ctx, c.ref.ID); ok {
		t.Error("HasChunk counted a chunk file outside the store (through a linked fan-out directory)")
	}
	if _, err := d.PutChunk(ctx, c.ref.ID, c.raw); err == nil {
		t.Error("PutChunk through a fan-out directory linked out of the store succeeded")
	}

	d2, err := store.CreateDir(filepath.Join(parent, "chunks-link"))
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if err := os.Symlink(outside, filepath.Join(d2.Path(), "chunks")); err != nil {
		t.Fatal(err)
	}
	other := newChunk(8, 5000)
	if _, err := d2.PutChunk(ctx, other.ref.ID, other.raw); err == nil {
		t.Error("PutChunk through chunks/ linked out of the store succeeded")
	}

	entries, err := os.ReadDir(outside)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("a chunk write escaped the store: %d entries in %s, want 1", len(entries), outside)
	}
}

// Many chunks sharing fan-out directories, written concurrently into a fresh store: each
// lands once, whole, where ChunkPath says, and a second store handle sees them all.
func TestDirPutChunkManyConcurrent(t *testing.T) {
	ctx := context.Background()
	d := newDir(t)
	chunks := make([]testChunk, 300)
	for i := range chunks {
		chunks[i] = newChunk(uint64(1000+i), 2000+i)
	}
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(chunks); i += 3 { // every chunk is put by two writers
				if _, err := d.PutChunk(ctx, chunks[i].ref.ID, chunks[i].raw); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	d2, err := store.OpenDir(d.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	for _, c := range chunks {
		size, ok, err := d2.HasChunk(ctx, c.ref.ID)
		if !ok || err != nil || size != int64(len(c.raw)) {
			t.Fatalf("chunk %s: %d, %v, %v", c.ref.ID, size, ok, err)
		}
		if raw, err := d2.Chunk(ctx, c.ref); err != nil || !bytes.Equal(raw, c.raw) {
			t.Fatalf("chunk %s read back: %v", c.ref.ID, err)
		}
	}
	noTemps(t, d.Path())
}
